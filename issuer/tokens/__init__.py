"""Compact ES256 JWS and the access tokens the issuer mints, written directly on `cryptography`.

Signing is the floor of minting (tens of microseconds); everything around it is
kept small: the header segment is cached per key, claims are serialised by
orjson (byte for byte what the stdlib's compact encoder writes), and the DER
signature is converted to the raw 64-byte r||s form JOSE (and Neon's proxy)
require.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
import os
from collections.abc import Mapping

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from issuer.keys.ring import KeyRing

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 (RFC 9068 media type, not a secret)
# Claims the issuer sets, or that verifiers act on (RFC 7519, 9068, 7800, 8693);
# custom claims may not supply them.
RESERVED_CLAIMS = frozenset(
    {
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "scp", "client_id",
        "azp", "auth_time", "acr", "amr", "cnf", "act", "may_act", "role",
    }
)  # fmt: skip
# ES256 over a digest hashlib computed: the same signature, without cryptography
# setting up a hash context per call (~0.5 us of minting's overhead).
_ECDSA_SHA256_DIGEST = ec.ECDSA(Prehashed(hashes.SHA256()))
# One reused encoder (dumps() builds one per call); NaN would make the payload invalid JSON.
_compact_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
# Claim values orjson writes exactly as `_compact_json` does, as long as the output is
# ASCII without DEL (orjson writes other text raw, `json` escapes it as \uXXXX).
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def database_role(audience: str | None, database_audience: str) -> str | None:
    """The `role` claim: Neon's Data API switches to the role a token names, so a
    database token names `authenticated` (what RLS policies are written for); tokens
    for anything else name none."""
    return DATABASE_ROLE if audience == database_audience else None


#: The Postgres role database tokens are for (Neon's Data API; `sql/` grants it).
DATABASE_ROLE = "authenticated"


class ReservedClaimError(ValueError):
    """A custom claim tried to replace a registered one (for example `sub` or `exp`)."""


def sign_jwt(ring: KeyRing, claims: dict[str, object], typ: str = "JWT") -> str:
    """Sign `claims` with the ring's active key; header {alg: ES256, kid, typ}."""
    key = ring.signing_key()
    payload = claims_json(claims)
    signing_input = key.header_segment(typ) + b"." + _b64(payload)
    digest = hashlib.sha256(signing_input).digest()
    signature = raw_signature(key.private_key.sign(digest, _ECDSA_SHA256_DIGEST))
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
    role: str | None = None,
    extra_claims: Mapping[str, object] | None = None,
) -> str:
    """An RFC 9068-style access token: registered claims first, then `extra_claims`.

    `aud` is left out when `audience` is None (Neon checks it only when configured),
    likewise `scope`, `client_id` and `role` (the Postgres role Neon's Data API
    switches to). Raises ReservedClaimError if an extra claim names a registered
    one, and ValueError for a ttl that is not a positive, finite number.
    """
    if not 0 < ttl < math.inf:  # NaN too: its `exp` would be written as null
        raise ValueError("ttl must be a positive, finite number of seconds")
    if extra_claims and not RESERVED_CLAIMS.isdisjoint(extra_claims):
        clashing = ", ".join(sorted(RESERVED_CLAIMS.intersection(extra_claims)))
        raise ReservedClaimError(f"custom claims may not set registered claims: {clashing}")
    now = int(ring.clock())
    # One literal, then drop the absent: cheaper than growing the dict key by key.
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": os.urandom(16).hex(),
        "scope": scope,
        "client_id": client_id,
        "role": role,
    }
    if audience is None:
        del claims["aud"]
    if scope is None:
        del claims["scope"]
    if client_id is None:
        del claims["client_id"]
    if role is None:
        del claims["role"]
    if extra_claims:
        claims.update(extra_claims)
    return sign_jwt(ring, claims, typ=ACCESS_TOKEN_TYP)


def claims_json(claims: dict[str, object]) -> bytes:
    """Compact JSON of `claims`, identical to `json.dumps(..., separators=(",", ":"))`.

    orjson takes a tenth of the stdlib's time for what tokens carry (strings,
    integers), which is most of minting's cost besides the signature. It differs on
    floats (formatting; NaN becomes null), nested values, integers beyond 64 bits,
    non-string keys and non-ASCII text: those take the stdlib path, which refuses NaN.
    """
    if _PLAIN_TYPES.issuperset(map(type, claims.values())):
        try:
            payload = orjson.dumps(claims)
        except orjson.JSONEncodeError:
            pass
        else:
            if payload.isascii() and b"\x7f" not in payload:
                return payload
    return _compact_json(claims).encode("ascii")


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
    """Unpadded base64url (`base64.urlsafe_b64encode` without its two extra calls)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")
