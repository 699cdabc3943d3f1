"""JWKS fetching and caching as Neon's proxy does it (proxy/src/auth/backend/jwt.rs).

A key set is refreshed in the background once it is 5 minutes old and
synchronously once it is an hour old. A `kid` that is not in the set asks for a
renewal once the set is 30 s old, but a renewal hands back the cached set while it
is younger than 5 minutes: in effect a new key is seen once the set is 5 minutes
old (Neon's proxy waits in a loop until then; this one answers "jwk not found").
A renewal whose fetch fails leaves that URL with no keys at all, and none is
tried again for 5 minutes: the JWKS URL must stay up. Fetches follow no
redirects, time out after 5 seconds and read at most 64 KiB.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

log = logging.getLogger(__name__)

AUTO_RENEW = 300.0
MAX_RENEW = 3600.0
MIN_RENEW = 30.0
FETCH_TIMEOUT = (2.0, 5.0)
MAX_BODY = 64 * 1024
MIN_RSA_BITS = 2048

Clock = Callable[[], float]


@dataclass(frozen=True)
class Jwk:
    """A published key: usable (`key` set) or kept only to explain why it is refused."""

    kid: str
    alg: str | None
    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None
    unsupported: str | None = None


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url, as JWS requires: canonical too (unused trailing
    bits zero), so a token has one spelling, as with Neon's decoder."""
    if "=" in text or any(c in text for c in "+/ \n\r\t"):
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if base64.urlsafe_b64encode(data).rstrip(b"=") != text.encode():
        raise ValueError("not canonical base64url")
    return data


def _uint(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError("missing key parameter")
    return int.from_bytes(b64url_decode(value), "big")


def parse_jwk(item: object) -> Jwk | None:
    """One entry of `keys`, or None when it cannot be a signing key we could ever select."""
    if not isinstance(item, dict) or not isinstance(item.get("kid"), str):
        return None
    if item.get("use") is not None and item.get("use") != "sig":
        return None
    kid, kty = item["kid"], item.get("kty")
    alg = item.get("alg") if isinstance(item.get("alg"), str) else None
    try:
        if kty == "EC":
            if item.get("crv") != "P-256":
                return Jwk(kid, alg, None, f"unsupported EC key type {item.get('crv')}")
            x, y = b64url_decode(item["x"]), b64url_decode(item["y"])
            if len(x) != 32 or len(y) != 32:
                return Jwk(kid, alg, None, "invalid P256 key")
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            )
            return Jwk(kid, alg, numbers.public_key())
        if kty == "RSA":
            key = rsa.RSAPublicNumbers(_uint(item.get("e")), _uint(item.get("n"))).public_key()
            if key.key_size < MIN_RSA_BITS:
                return Jwk(kid, alg, None, "invalid RSA key")
            return Jwk(kid, alg, key)
    except (KeyError, TypeError, ValueError):
        return Jwk(kid, alg, None, f"invalid {kty} key")
    return Jwk(kid, alg, None, f"unsupported key type {kty}")


def parse_jwks(body: bytes) -> dict[str, Jwk]:
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    keys: dict[str, Jwk] = {}
    for item in document["keys"]:
        jwk = parse_jwk(item)
        if jwk is not None:
            keys.setdefault(jwk.kid, jwk)
    return keys


class JwksFetcher:
    """GETs a JWKS document: no redirects, bounded time and size."""

    def __init__(self) -> None:
        self._http = requests.Session()
        self._http.headers["User-Agent"] = "neon-proxy-local"
        self._http.trust_env = False

    def __call__(self, url: str) -> dict[str, Jwk]:
        deadline = time.monotonic() + FETCH_TIMEOUT[1]
        with self._http.get(
            url, timeout=FETCH_TIMEOUT, allow_redirects=False, stream=True
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = b""
            # The read timeout bounds each read; the deadline bounds a slow drip.
            for chunk in response.iter_content(8192):
                body += chunk
                if len(body) > MAX_BODY:
                    raise ValueError("JWKS response too large")
                if time.monotonic() > deadline:
                    raise ValueError("JWKS response too slow")
        return parse_jwks(body)


class KeySet:
    """The cached keys of one JWKS URL."""

    def __init__(self, url: str, fetch: Callable[[str], dict[str, Jwk]], clock: Clock) -> None:
        self.url = url
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, Jwk] = {}
        self._retrieved: float | None = None
        self._lock = threading.Lock()
        self._refreshing = False
        #: Fetches of this URL by outcome ("ok", "failed"), for /metrics.
        self.fetches = {"ok": 0, "failed": 0}

    def find(self, kid: str, *, refetch_unknown: bool) -> Jwk | None:
        now = self._clock()
        if self._retrieved is None or now - self._retrieved > MAX_RENEW:
            self._renew(max_age=MAX_RENEW)
        elif now - self._retrieved > AUTO_RENEW:
            self._renew_in_background()
        jwk = self._keys.get(kid)
        if jwk is None and refetch_unknown and now - self._retrieved > MIN_RENEW:
            # Neon's renew_jwks returns the cached entry while it is younger than
            # AUTO_RENEW, so only a set that old is fetched again for an unknown kid.
            self._renew(max_age=AUTO_RENEW)
            jwk = self._keys.get(kid)
        return jwk

    def _renew(self, max_age: float) -> None:
        with self._lock:
            # Another thread may have refreshed while this one waited for the lock.
            if self._retrieved is not None and self._clock() - self._retrieved <= max_age:
                return
            self._refresh_locked()

    def _renew_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._background, name="jwks-refresh", daemon=True).start()

    def _background(self) -> None:
        with self._lock:
            try:
                if self._retrieved is None or self._clock() - self._retrieved > AUTO_RENEW:
                    self._refresh_locked()
            finally:
                self._refreshing = False

    def _refresh_locked(self) -> None:
        # As Neon: a failed fetch counts as a renewal that found no keys for this URL
        # (its new cache entry lacks them), and the next one waits its turn like any
        # other. An unreachable issuer costs one timeout per window, not one per request.
        started = self._clock()
        try:
            self._keys = self._fetch(self.url)
            self.fetches["ok"] += 1
        except (requests.RequestException, ValueError) as error:
            log.warning("could not fetch JWKS from %s: %s (its keys are dropped)", self.url, error)
            self._keys = {}
            self.fetches["failed"] += 1
        self._retrieved = started

    def age(self) -> float | None:
        """Seconds since the keys were last renewed (None: never)."""
        return None if self._retrieved is None else self._clock() - self._retrieved

    def size(self) -> int:
        return len(self._keys)


class JwksCache:
    """One `KeySet` per JWKS URL, shared by every rule naming that URL."""

    def __init__(
        self,
        fetch: Callable[[str], dict[str, Jwk]] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._fetch = fetch or JwksFetcher()
        self._clock = clock
        self._sets: dict[str, KeySet] = {}
        self._lock = threading.Lock()

    def key_sets(self) -> list[KeySet]:
        with self._lock:
            return list(self._sets.values())

    def key_set(self, url: str) -> KeySet:
        key_set = self._sets.get(url)
        if key_set is None:
            with self._lock:
                key_set = self._sets.setdefault(url, KeySet(url, self._fetch, self._clock))
        return key_set
