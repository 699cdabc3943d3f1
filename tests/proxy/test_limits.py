"""Time limits no SQL can lift, and a clear 503 when Postgres is out of reach."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.proxy.support import Proxy, SigningKey, base_config, claims_for


@pytest.fixture(scope="module")
def strict(start_proxy: Callable[..., Proxy], neon_db: Any, main_jwks: str) -> Proxy:
    return start_proxy(
        base_config(neon_db, main_jwks, statement_timeout_ms=300, request_timeout=1.0, pool_size=1)
    )


def timed(proxy: Proxy, body: Any, token: str) -> tuple[float, Any]:
    started = time.monotonic()
    response = proxy.post(body, token)
    assert response.status_code == 400, response.text
    return time.monotonic() - started, response.json()


def test_server_side_statement_timeout(strict: Proxy, ec_key: SigningKey) -> None:
    token = ec_key.sign(claims_for("slow"))
    elapsed, error = timed(strict, {"query": "select pg_sleep(5)"}, token)
    assert error["code"] == "57014"
    assert error["message"] == "canceling statement due to statement timeout"
    assert elapsed < 1.0
    # Lifting the timeout inside the statement itself is too late.
    elapsed, error = timed(
        strict, {"query": "select set_config('statement_timeout', '0', false), pg_sleep(5)"}, token
    )
    assert error["code"] == "57014" and elapsed < 1.0


def test_a_batch_cannot_lift_the_proxy_time_limit(strict: Proxy, ec_key: SigningKey) -> None:
    token = ec_key.sign(claims_for("sneaky"))
    body = {"queries": [{"query": "set statement_timeout = 0"}, {"query": "select pg_sleep(5)"}]}
    elapsed, error = timed(strict, body, token)
    assert error["code"] == "57014"
    assert "time limit" in error["message"]
    assert elapsed < 3.0
    # The connection it ran on is gone; the pool (size 1) still serves the next request.
    assert strict.sql(token, "select current_setting('statement_timeout') as t")["rows"] == [
        {"t": "300ms"}
    ]


def test_unreachable_postgres_is_503(
    start_proxy: Callable[..., Proxy],
    neon_db: Any,
    main_jwks: str,
    ec_key: SigningKey,
    tmp_path: Any,
) -> None:
    config = base_config(neon_db, main_jwks, database_host=str(tmp_path), database_port=1)
    unreachable = start_proxy(config)
    response = unreachable.post({"query": "select 1"}, ec_key.sign(claims_for("nobody")))
    assert response.status_code == 503
    assert response.json()["message"].startswith("could not connect to the database")
    assert response.json()["code"] == ""
