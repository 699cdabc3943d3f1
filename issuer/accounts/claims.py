"""Custom claims: per-user values copied into that user's tokens.

A custom claim must never shadow a claim the issuer sets itself, or an admin
could (by mistake or malice) mint tokens with another `sub` or a later `exp`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# RFC 7519 registered claims, RFC 9068 access-token claims, the OpenID Connect
# ID-token and standard claims the issuer derives, and RFC 8693 / 7800 ones.
RESERVED_CLAIMS = frozenset(
    {
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
        "client_id", "scope", "scp", "auth_time", "acr", "amr",
        "nonce", "azp", "at_hash", "c_hash", "s_hash", "sid",
        "email", "email_verified", "typ", "cnf", "act", "may_act",
        # Neon's Data API switches to the Postgres role a token's `role` names: the
        # issuer sets it ("authenticated" on database tokens), never a user.
        "role",
    }
)  # fmt: skip
CLAIM_NAME_MAX_LENGTH = 64
# Claims ride in every token, and tokens ride in every request header.
CLAIMS_MAX_BYTES = 2048


class InvalidClaimError(ValueError):
    """A claim we refuse to store; the message names the claim."""


def validate_claims(claims: dict[str, Any]) -> dict[str, Any]:
    for name in claims:
        if not isinstance(name, str) or not name:
            raise InvalidClaimError("A claim name must be a non-empty string.")
        if len(name) > CLAIM_NAME_MAX_LENGTH:
            raise InvalidClaimError(
                f"Claim name {name[:16]!r}… is longer than {CLAIM_NAME_MAX_LENGTH} characters."
            )
        if not name.isprintable() or name != name.strip():
            raise InvalidClaimError(f"Claim name {name!r} contains spaces or control characters.")
        if name in RESERVED_CLAIMS:
            raise InvalidClaimError(
                f"Claim {name!r} is set by the issuer itself and cannot be a custom claim."
            )
    try:
        encoded = json.dumps(claims, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise InvalidClaimError("Claim values must be finite JSON numbers.") from None
    if len(encoded.encode()) > CLAIMS_MAX_BYTES:
        raise InvalidClaimError(f"Custom claims take at most {CLAIMS_MAX_BYTES} bytes as JSON.")
    return claims


def parse_claims(assignments: Iterable[str]) -> dict[str, Any]:
    """`NAME=VALUE` assignments into custom claims, checked; a name given twice is
    refused rather than silently overwritten."""
    claims: dict[str, Any] = {}
    for assignment in assignments:
        name, value = parse_claim(assignment)
        if name in claims:
            raise InvalidClaimError(f"Claim {name!r} is given twice.")
        claims[name] = value
    return validate_claims(claims)


def parse_claim(assignment: str) -> tuple[str, Any]:
    """`name=value`; the value is JSON when it parses as JSON, else a string."""
    name, sep, raw = assignment.partition("=")
    if not sep or not name:
        raise InvalidClaimError(f"Expected NAME=VALUE, got {assignment!r}.")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        value = raw
    return name, value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
