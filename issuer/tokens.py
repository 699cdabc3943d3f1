"""Compact ES256 JWS and the access tokens the issuer mints, written directly on `cryptography`.

Signing is the floor of minting (tens of microseconds); everything around it is
kept small: the header segment is cached per key, claims are serialised once
with compact separators, and the DER signature is converted to the raw 64-byte
r||s form JOSE (and Neon's proxy) require.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from issuer.keyring import KeyRing

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 (RFC 9068 media type, not a secret)
# Claims the issuer sets itself; custom claims may not replace them.
RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "client_id", "azp", "auth_time"}
)
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class ReservedClaimError(ValueError):
    """A custom claim tried to replace a registered one (for example `sub` or `exp`)."""


def sign_jwt(ring: KeyRing, claims: Mapping[str, object], typ: str = "JWT") -> str:
    """Sign `claims` with the ring's active key; header {alg: ES256, kid, typ}."""
    key = ring.signing_key()
    payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    signing_input = key.header_segment(typ) + b"." + _b64(payload)
    r, s = decode_dss_signature(key.private_key.sign(signing_input, _ECDSA_SHA256))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return (signing_input + b"." + _b64(signature)).decode("ascii")


def mint_access_token(
    ring: KeyRing,
    *,
    issuer: str,
    subject: str,
    audience: str | None,
    ttl: int,
    scope: str | None = None,
    client_id: str | None = None,
    extra_claims: Mapping[str, object] | None = None,
) -> str:
    """An RFC 9068-style access token: registered claims first, then `extra_claims`.

    `aud` is left out when `audience` is None (Neon checks it only when configured),
    likewise `scope` and `client_id`. Raises ReservedClaimError if an extra claim
    names a registered one, and ValueError for a non-positive ttl.
    """
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    clashing = RESERVED_CLAIMS.intersection(extra_claims or ())
    if clashing:
        raise ReservedClaimError(
            f"custom claims may not set registered claims: {', '.join(sorted(clashing))}"
        )
    now = int(ring.clock())
    claims: dict[str, object] = {"iss": issuer, "sub": subject}
    if audience is not None:
        claims["aud"] = audience
    claims.update(exp=now + ttl, iat=now, nbf=now, jti=secrets.token_urlsafe(16))
    if scope is not None:
        claims["scope"] = scope
    if client_id is not None:
        claims["client_id"] = client_id
    if extra_claims:
        claims.update(extra_claims)
    return sign_jwt(ring, claims, typ=ACCESS_TOKEN_TYP)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")
