"""The JWKS cache: key rotation, the unknown-kid throttle, refresh windows, fetch limits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from proxy.rules import AuthRule
from tests.proxy.support import Clock, JwksServer, Proxy, SigningKey, base_config, new_ec_key


def start(
    start_proxy: Callable[..., Proxy], neon_db: Any, url: str, clock: Clock | None = None
) -> Proxy:
    rules = [AuthRule("r", url, None, ("authenticated",))]
    return start_proxy(base_config(neon_db, url, auth_rules=rules, clock=clock or Clock()))


def token(key: SigningKey, clock: Clock, sub: str = "rotating") -> str:
    now = int(clock())
    return key.sign({"sub": sub, "iat": now, "exp": now + 600})


def status(proxy: Proxy, jwt: str) -> tuple[int, str]:
    response = proxy.post({"query": "select auth.user_id() as u"}, jwt)
    body = response.json()
    return response.status_code, body["rows"][0]["u"] if response.status_code == 200 else body[
        "message"
    ]


def test_a_new_key_is_seen_once_the_cached_set_is_five_minutes_old(
    start_proxy: Callable[..., Proxy], neon_db: Any, jwks_server: JwksServer
) -> None:
    """Neon's unknown-kid path: a renewal is asked for after 30 s, but it hands back
    the cached set until that is 5 min old. So publish keys long before they sign."""
    path = f"/rotate-{uuid.uuid4().hex}/jwks.json"
    old, new = new_ec_key(), new_ec_key()
    clock = Clock()
    proxy = start(start_proxy, neon_db, jwks_server.publish(path, old), clock)

    assert status(proxy, token(old, clock)) == (200, "rotating")
    assert jwks_server.count(path) == 1

    jwks_server.publish(path, old, new)
    for seconds in (10, 31, 299):
        clock.offset = seconds
        assert status(proxy, token(new, clock)) == (400, "jwk not found"), seconds
    assert jwks_server.count(path) == 1, "a set younger than 5 min is not fetched again"

    clock.offset = 301
    assert status(proxy, token(new, clock)) == (200, "rotating")
    assert jwks_server.count(path) == 2

    for _ in range(5):
        assert status(proxy, token(new_ec_key(), clock)) == (400, "jwk not found")
    assert jwks_server.count(path) == 2, "random kids must not turn into fetches"


def test_background_refresh_after_5_minutes_and_blocking_after_an_hour(
    start_proxy: Callable[..., Proxy], neon_db: Any, jwks_server: JwksServer
) -> None:
    path = f"/refresh-{uuid.uuid4().hex}/jwks.json"
    first, second = new_ec_key(), new_ec_key()
    clock = Clock()
    proxy = start(start_proxy, neon_db, jwks_server.publish(path, first, second), clock)
    assert status(proxy, token(first, clock))[0] == 200
    assert jwks_server.count(path) == 1

    clock.offset += 301
    jwks_server.publish(path, second)
    assert status(proxy, token(first, clock, "still-cached"))[0] == 200
    deadline = time.monotonic() + 5
    while jwks_server.count(path) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert jwks_server.count(path) == 2
    time.sleep(0.2)
    assert status(proxy, token(first, clock, "after-refresh")) == (400, "jwk not found")

    jwks_server.publish(path, first)
    clock.offset += 3601
    assert status(proxy, token(first, clock, "hour-later")) == (200, "hour-later")
    assert jwks_server.count(path) == 3
    assert status(proxy, token(second, clock, "removed")) == (400, "jwk not found")


def test_redirects_are_not_followed(
    start_proxy: Callable[..., Proxy], neon_db: Any, jwks_server: JwksServer
) -> None:
    key = new_ec_key()
    target = jwks_server.publish(f"/target-{uuid.uuid4().hex}.json", key)
    path = f"/redirect-{uuid.uuid4().hex}.json"
    jwks_server.serve(path, 302, b"", {"Location": target})
    proxy = start(start_proxy, neon_db, jwks_server.url(path))
    assert status(proxy, token(key, Clock())) == (400, "jwk not found")
    assert jwks_server.count(path) == 1
    assert jwks_server.count(target.removeprefix(jwks_server.base)) == 0


def test_oversized_or_invalid_jwks_documents_yield_no_keys(
    start_proxy: Callable[..., Proxy], neon_db: Any, jwks_server: JwksServer
) -> None:
    key = new_ec_key()
    padded = {"keys": [key.jwk()], "padding": "x" * (64 * 1024)}
    for body in (json.dumps(padded).encode(), b"not json", b'{"keys": "nope"}'):
        path = f"/bad-{uuid.uuid4().hex}.json"
        jwks_server.serve(path, 200, body)
        proxy = start(start_proxy, neon_db, jwks_server.url(path))
        assert status(proxy, token(key, Clock())) == (400, "jwk not found")
    path = f"/fits-{uuid.uuid4().hex}.json"
    jwks_server.serve(
        path, 200, json.dumps({"keys": [key.jwk()], "padding": "x" * 60_000}).encode()
    )
    assert status(start(start_proxy, neon_db, jwks_server.url(path)), token(key, Clock()))[0] == 200


def test_a_cached_token_still_expires(
    start_proxy: Callable[..., Proxy], neon_db: Any, jwks_server: JwksServer
) -> None:
    key = new_ec_key()
    clock = Clock()
    proxy = start(
        start_proxy, neon_db, jwks_server.publish(f"/exp-{uuid.uuid4().hex}.json", key), clock
    )
    now = int(clock())
    jwt = key.sign({"sub": "short", "exp": now + 60})
    assert status(proxy, jwt) == (200, "short")
    clock.offset += 60 + 31
    assert status(proxy, jwt) == (400, f"JWT token has expired (exp={now + 60})")


def test_a_cached_token_dies_with_its_key(
    start_proxy: Callable[..., Proxy], neon_db: Any, jwks_server: JwksServer
) -> None:
    """The validated-token cache must not keep honouring a key the JWKS dropped
    (an emergency revocation): its hits count only while the key is published."""
    path = f"/revoke-{uuid.uuid4().hex}/jwks.json"
    leaked, kept = new_ec_key(), new_ec_key()
    clock = Clock()
    proxy = start(start_proxy, neon_db, jwks_server.publish(path, leaked, kept), clock)
    assert status(proxy, token(kept, clock, "first"))[0] == 200
    # Validated (and cached for 5 min) just before the key set's refresh is due.
    clock.offset += 299
    jwt = token(leaked, clock, "cached")
    assert status(proxy, jwt) == (200, "cached")

    jwks_server.publish(path, kept)
    clock.offset += 2
    status(proxy, token(kept, clock, "trigger"))  # starts the background refresh
    deadline = time.monotonic() + 5
    while jwks_server.count(path) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert jwks_server.count(path) == 2
    time.sleep(0.2)
    assert status(proxy, jwt) == (400, "jwk not found")


def test_a_failed_renewal_drops_the_keys_until_the_next_one() -> None:
    """Neon's renewal swaps in a cache entry without the keys of a URL it could not
    fetch, and tries again only 5 min later: an issuer that is down when the set is
    renewed costs minutes of refused tokens (serve the JWKS statically: see
    ISSUER_JWKS_STATIC_DIR). It also means a revoked key never outlives the URL."""
    from proxy.jwks import AUTO_RENEW, KeySet, parse_jwk

    now = [1_000.0]
    reachable = [True]
    key = parse_jwk(new_ec_key("kept").jwk())

    def fetch(_url: str) -> dict:
        if not reachable[0]:
            raise ValueError("HTTP 503")
        return {"kept": key}

    keys = KeySet("https://issuer.example/jwks.json", fetch, lambda: now[0])
    assert keys.find("kept", refetch_unknown=False) is key
    reachable[0] = False
    now[0] += AUTO_RENEW - 1
    assert keys.find("kept", refetch_unknown=True) is key, "no renewal before 5 min"
    now[0] += 2
    keys._renew(max_age=AUTO_RENEW)  # the background renewal find() starts, run here
    assert keys.find("kept", refetch_unknown=True) is None
    reachable[0] = True
    now[0] += AUTO_RENEW - 1
    assert keys.find("kept", refetch_unknown=True) is None, "the next renewal waits 5 min"
    now[0] += 2
    keys._renew(max_age=AUTO_RENEW)
    assert keys.find("kept", refetch_unknown=False) is key
