"""Validation of the client's bearer JWT, as Neon's proxy does it.

Only ES256 (P-256, raw 64-byte r||s signatures) and RS256 are accepted, the
header must name a `kid` found in a JWKS that an auth rule grants the requested
role, `exp`/`nbf` get 30 s of leeway, `aud` is checked only when the rule
configures one, and `iss` is not checked. Key material embedded in or pointed to
by the token (`jwk`, `jku`, `x5u`, `x5c`) is never looked at. The claims become
the session's `auth.session()`, so they must be strict JSON that jsonb holds
as sent, with a string `sub`; anything else is malformed, never a 500.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from proxy.errors import AuthError
from proxy.jwks import Clock, Jwk, JwksCache, b64url_decode
from proxy.pgtext import storable
from proxy.rules import AuthRule

LEEWAY = 30.0
# Validated tokens are remembered at most this long, so a key removed from the JWKS
# stops being honoured within the same window as Neon's background refresh.
CACHE_TTL = 300.0
# Bounded: at most CACHE_ENTRIES x (token + claims) bytes, a few tens of MiB at worst.
CACHE_ENTRIES = 4096

# Algorithms a JOSE header may name (RFC 7518); anything else is not a JWT at all.
KNOWN_ALGORITHMS = frozenset(
    f"{family}{bits}" for family in ("HS", "RS", "ES", "PS") for bits in (256, 384, 512)
) | {"EdDSA"}

NOT_A_JWT = "Provided authentication token is not a valid JWT encoding"


@dataclass(frozen=True)
class _Cached:
    """A token that passed every check; `nbf` cannot become unmet as time moves on.

    The key that verified it is remembered too: a hit counts only while that key
    is still published, so the cache never outlives a revoked key (and the hit
    keeps the key set's background refresh going).
    """

    claims: dict[str, Any]
    until: float
    kid: str
    jwks_url: str


class TokenValidator:
    """Checks a bearer token for a role and returns its claims, or raises `AuthError`."""

    def __init__(
        self,
        rules: Sequence[AuthRule],
        jwks: JwksCache,
        *,
        clock: Clock = time.time,
        max_token_bytes: int = 8 * 1024,
    ) -> None:
        self._rules = list(rules)
        self._jwks = jwks
        self._clock = clock
        self._max_token_bytes = max_token_bytes
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._cache_lock = threading.Lock()

    def validate(self, token: str, role: str) -> dict[str, Any]:
        if len(token) > self._max_token_bytes:
            raise AuthError("Provided authentication token is too large")
        now = self._clock()
        cached = self._cache.get((token, role))
        if (
            cached is not None
            and now < cached.until
            and self._jwks.key_set(cached.jwks_url).find(cached.kid, refetch_unknown=False)
        ):
            return cached.claims
        claims, expires, kid, rule = self._check(token, role, now)
        until = min(now + CACHE_TTL, expires + LEEWAY if expires is not None else now + CACHE_TTL)
        with self._cache_lock:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[(token, role)] = _Cached(claims, until, kid, rule.jwks_url)
        return claims

    def _check(
        self, token: str, role: str, now: float
    ) -> tuple[dict[str, Any], float | None, str, AuthRule]:
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthError(NOT_A_JWT)
        header, claims = _json_object(parts[0]), _json_object(parts[1])
        try:
            signature = b64url_decode(parts[2])
        except ValueError:
            raise AuthError(NOT_A_JWT) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in KNOWN_ALGORITHMS or "crit" in header:
            raise AuthError(NOT_A_JWT)
        # Typed as Neon's proxy reads them (its JwtPayload, serde): `exp`/`nbf`
        # Option<u64>, `iss`/`sub`/`jti`/`sid` Option<str> (null reads as absent),
        # `aud` a string or a list of them; anything else is "not a valid JWT
        # encoding" there, so here too.
        expires, not_before = _numeric_date(claims.get("exp")), _numeric_date(claims.get("nbf"))
        audience = claims.get("aud", [])
        audiences = [audience] if isinstance(audience, str) else audience
        if (
            (claims.get("exp") is not None and expires is None)
            or (claims.get("nbf") is not None and not_before is None)
            or any(not isinstance(claims.get(name, ""), str | None) for name in _STRINGS)
            or not isinstance(audiences, list)
            or not all(isinstance(a, str) for a in audiences)
            or not _storable_claims(claims)
        ):
            raise AuthError(NOT_A_JWT)
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("missing key id")

        jwk, rule = self._find_key(kid, role)
        if jwk.unsupported:
            raise AuthError(jwk.unsupported)
        if (jwk.alg is not None and jwk.alg != alg) or not _key_fits(jwk, alg):
            raise AuthError("signature algorithm not supported")
        _verify(jwk, f"{parts[0]}.{parts[1]}".encode(), signature)

        if rule.audience is not None and rule.audience not in audiences:
            raise AuthError("invalid JWT token audience")
        if expires is not None and now >= expires + LEEWAY:
            raise AuthError(f"JWT token has expired (exp={expires})")
        if not_before is not None and not_before >= now + LEEWAY:
            raise AuthError(f"JWT token is not yet ready to use (nbf={not_before})")
        return claims, expires, kid, rule

    def _find_key(self, kid: str, role: str) -> tuple[Jwk, AuthRule]:
        rules = [rule for rule in self._rules if role in rule.role_names]
        if not rules:
            raise AuthError(
                "failed to fetch auth rules: JWKs settings for this role were not configured"
            )
        for refetch_unknown in (False, True):
            for rule in rules:
                key_set = self._jwks.key_set(rule.jwks_url)
                jwk = key_set.find(kid, refetch_unknown=refetch_unknown)
                if jwk is not None:
                    return jwk, rule
        raise AuthError("jwk not found")


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: an 8 KiB token holds thousands of nested brackets.
        raise AuthError(NOT_A_JWT) from None
    if not isinstance(value, dict):
        raise AuthError(NOT_A_JWT)
    return value


def _storable_claims(claims: dict[str, Any]) -> bool:
    """Whether the claims are strict JSON that the session's jsonb holds as sent.

    Python's parser also takes NaN, Infinity, numbers beyond a double and unpaired
    surrogate escapes, which strict parsers (Neon's among them) refuse, and jsonb
    cannot store NUL in a string. Walked without recursion: the nesting is deep
    enough to hit Python's recursion limit.
    """
    pending: list[Any] = [claims]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if not storable(value):
                return False
        elif isinstance(value, float):
            if not math.isfinite(value):
                return False
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return True


#: Claims Neon's proxy reads as strings.
_STRINGS = ("iss", "sub", "jti", "sid")


def _numeric_date(value: Any) -> int | None:
    """A NumericDate as Neon reads it: an unsigned 64-bit integer (no float, no bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        return None
    return value


def _key_fits(jwk: Jwk, alg: str) -> bool:
    if alg == "ES256":
        return isinstance(jwk.key, ec.EllipticCurvePublicKey)
    if alg == "RS256":
        return isinstance(jwk.key, rsa.RSAPublicKey)
    return False


def _verify(jwk: Jwk, signed: bytes, signature: bytes) -> None:
    try:
        if isinstance(jwk.key, ec.EllipticCurvePublicKey):
            # JWS carries ECDSA as raw r||s; DER (or any other length) is malformed.
            if len(signature) != 64:
                raise InvalidSignature
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            if r == 0 or s == 0:
                raise InvalidSignature
            jwk.key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
        elif isinstance(jwk.key, rsa.RSAPublicKey):
            if len(signature) != (jwk.key.key_size + 7) // 8:
                raise InvalidSignature
            jwk.key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise AuthError("signature error: signature verification failed") from None
