"""Time and size limits no SQL can lift, and a clear 503 when Postgres is out of reach."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
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


SMALL_LIMIT = 64 * 1024
ENDLESS = "from (select generate_series(1, 1e12)) as endless"  # streamed, not materialized


@pytest.fixture(scope="module")
def small(start_proxy: Callable[..., Proxy], neon_db: Any, main_jwks: str) -> Proxy:
    # The default time limit (30 s): a 507 means the rows were counted as they came.
    return start_proxy(base_config(neon_db, main_jwks, max_response_bytes=SMALL_LIMIT, pool_size=1))


def _still_running(owner: psycopg.Connection, fragment: str = ENDLESS) -> int:
    """Backends still running a query that contains `fragment`, after up to 10 s."""
    deadline = time.monotonic() + 10
    while True:
        (count,) = owner.execute(
            "select count(*) from pg_stat_activity where query like %s and pid <> pg_backend_pid()",
            (f"%{fragment}%",),
        ).fetchone()
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


@pytest.mark.parametrize("columns", ["repeat('x', 1000)", "null", "''", ""])
def test_a_result_without_end_is_507_once_past_the_limit(
    small: Proxy, ec_key: SigningKey, owner: psycopg.Connection, columns: str
) -> None:
    """Nulls, empty values and rows without columns count too: no stream is free."""
    token = ec_key.sign(claims_for("endless"))
    response = small.post({"query": f"select {columns} {ENDLESS}"}, token)
    assert response.status_code == 507, response.text
    assert response.json()["message"] == f"response is too large (max is {SMALL_LIMIT} bytes)"
    # Its connection was closed, which ended the query; the pool (size 1) replaced it.
    assert _still_running(owner) == 0
    assert small.sql(token, "select 1 as one")["rows"] == [{"one": 1}]


def test_rows_are_read_while_a_long_request_is_still_being_sent(
    small: Proxy, ec_key: SigningKey, owner: psycopg.Connection
) -> None:
    # Postgres reads the second statement only after the first has ended: the proxy
    # must count the first one's rows while it waits to send the rest, not pile them up.
    # (4 MiB: far more than the buffers of the Unix socket the tests connect over.)
    token = ec_key.sign(claims_for("endless"))
    body = {
        "queries": [
            {"query": f"select repeat('x', 1000) {ENDLESS}"},
            {"query": "select length($1) as n", "params": ["y" * 4 * 1024 * 1024]},
        ]
    }
    response = small.post(body, token)
    assert response.status_code == 507, response.text
    assert _still_running(owner) == 0
    under = {"queries": [{"query": "select length($1) as n", "params": ["y" * 4 * 1024 * 1024]}]}
    assert small.post(under, token).json()["results"][0]["rows"] == [{"n": 4 * 1024 * 1024}]


def test_a_query_that_catches_its_cancels_is_given_up_on_and_ended(
    strict: Proxy, ec_key: SigningKey, owner: psycopg.Connection
) -> None:
    # statement_timeout and the proxy's cancel both raise query_canceled, which
    # PL/pgSQL can catch: the proxy stops waiting, and ends the backend itself.
    token = ec_key.sign(claims_for("stubborn"))
    stubborn = (
        "do $$ begin loop begin perform pg_sleep(3600);"
        " exception when query_canceled then null; end; end loop; end $$"
    )
    _, error = timed(strict, {"query": stubborn}, token)
    assert error["code"] == "57014" and "time limit" in error["message"]
    assert _still_running(owner, "perform pg_sleep(3600)") == 0
    assert strict.sql(token, "select 1 as one")["rows"] == [{"one": 1}]  # pool size 1


def test_a_backend_that_goes_quiet_after_a_507_is_ended(
    small: Proxy, ec_key: SigningKey, owner: psycopg.Connection
) -> None:
    # Past the limit, then asleep: it never writes again, so it never learns that its
    # socket was closed (and the batch lifted the statement timeout).
    token = ec_key.sign(claims_for("quiet"))
    quiet = (
        "select case when g <= 100 then repeat('x', 1000) else pg_sleep(3600)::text end"
        " from (select generate_series(1, 101) as g) as s"
    )
    body = {"queries": [{"query": "set statement_timeout = 0"}, {"query": quiet}]}
    assert small.post(body, token).status_code == 507
    assert _still_running(owner, "pg_sleep(3600)::text") == 0


def test_role_defaults_cannot_change_the_encoding_results_arrive_in(
    start_proxy: Callable[..., Proxy],
    neon_db: Any,
    main_jwks: str,
    ec_key: SigningKey,
    owner: psycopg.Connection,
) -> None:
    # Any user of a role can set its defaults (see sql/README.md); the proxy's own
    # startup setting outranks them.
    owner.execute("alter role authenticated set client_encoding = 'SQL_ASCII'")
    try:
        fresh = start_proxy(base_config(neon_db, main_jwks, pool_size=1))
        token = ec_key.sign(claims_for("encoding"))
        for _ in range(2):  # a new connection, then one after its reset
            assert fresh.sql(token, "select chr(233) as x, 'ü' as y")["rows"] == [
                {"x": "é", "y": "ü"}
            ]
    finally:
        owner.execute("alter role authenticated reset client_encoding")


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
