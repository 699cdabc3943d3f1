"""Compact ES256 JWS and the access tokens the issuer mints, written directly on `cryptography`.

Signing is the floor of minting (tens of microseconds); everything around it is
kept small: the header segment is cached per key, claims are serialised by one
reused compact encoder, and the DER signature is converted to the raw 64-byte
r||s form JOSE (and Neon's proxy) require.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from issuer.keyring import KeyRing

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 (RFC 9068 media type, not a secret)
# Claims the issuer sets, or that verifiers act on (RFC 7519, 9068, 7800, 8693);
# custom claims may not supply them.
RESERVED_CLAIMS = frozenset(
    {
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "scp", "client_id",
        "azp", "auth_time", "acr", "amr", "cnf", "act", "may_act",
    }
)  # fmt: skip
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
# One reused encoder (dumps() builds one per call); NaN would make the payload invalid JSON.
_compact_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class ReservedClaimError(ValueError):
    """A custom claim tried to replace a registered one (for example `sub` or `exp`)."""


def sign_jwt(ring: KeyRing, claims: dict[str, object], typ: str = "JWT") -> str:
    """Sign `claims` with the ring's active key; header {alg: ES256, kid, typ}."""
    key = ring.signing_key()
    payload = _compact_json(claims).encode("ascii")
    signing_input = key.header_segment(typ) + b"." + _b64(payload)
    signature = raw_signature(key.private_key.sign(signing_input, _ECDSA_SHA256))
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
    if extra_claims and not RESERVED_CLAIMS.isdisjoint(extra_claims):
        clashing = ", ".join(sorted(RESERVED_CLAIMS.intersection(extra_claims)))
        raise ReservedClaimError(f"custom claims may not set registered claims: {clashing}")
    now = int(ring.clock())
    claims: dict[str, object] = {"iss": issuer, "sub": subject}
    if audience is not None:
        claims["aud"] = audience
    claims["exp"] = now + ttl
    claims["iat"] = claims["nbf"] = now
    claims["jti"] = os.urandom(16).hex()
    if scope is not None:
        claims["scope"] = scope
    if client_id is not None:
        claims["client_id"] = client_id
    if extra_claims:
        claims.update(extra_claims)
    return sign_jwt(ring, claims, typ=ACCESS_TOKEN_TYP)


def raw_signature(der: bytes) -> bytes:
    """DER ECDSA-Sig-Value -> the fixed-width 64-byte r||s that JOSE requires.

    Same result as `decode_dss_signature` plus `int.to_bytes`, at a third of the
    cost (that pair was a fifth of minting's overhead over the bare signature).
    For P-256 the DER is always SEQUENCE (short length) { INTEGER r, INTEGER s },
    each integer at most 33 bytes (a 0x00 sign byte) and possibly shorter than 32
    (minimal encoding), hence the trim and left-pad.
    """
    r_end = 4 + der[3]
    s_end = r_end + 2 + der[r_end + 1]
    r, s = der[4:r_end], der[r_end + 2 : s_end]
    return r[-32:].rjust(32, b"\0") + s[-32:].rjust(32, b"\0")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")
