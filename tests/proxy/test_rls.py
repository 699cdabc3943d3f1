"""Row-level security under arbitrary SQL sent through the proxy by a logged-in user."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.proxy.support import Proxy, SigningKey, base_config, claims_for


@pytest.fixture
def users(proxy: Proxy, ec_key: SigningKey) -> dict[str, str]:
    """Two fresh users, each owning two todos; returns their tokens by name."""
    tag = uuid.uuid4().hex[:8]
    tokens = {name: ec_key.sign(claims_for(f"{name}-{tag}")) for name in ("alice", "bob")}
    for name, token in tokens.items():
        proxy.sql(token, "insert into todos (task) values ($1), ($2)", [f"{name} 1", f"{name} 2"])
    return tokens


def tasks(proxy: Proxy, token: str) -> list[str]:
    return sorted(r["task"] for r in proxy.sql(token, "select task from todos")["rows"])


def error_code(proxy: Proxy, token: str, query: str, params: list[Any] | None = None) -> str:
    response = proxy.post({"query": query, "params": params or []}, token)
    assert response.status_code == 400, response.text
    return response.json()["code"]


def test_a_user_sees_and_changes_only_their_own_rows(proxy: Proxy, users: dict[str, str]) -> None:
    alice, bob = users["alice"], users["bob"]
    bob_id = proxy.sql(bob, "select auth.user_id() as u")["rows"][0]["u"]
    assert tasks(proxy, alice) == ["alice 1", "alice 2"]
    assert proxy.sql(alice, "select * from todos where user_id = $1", [bob_id])["rows"] == []
    assert proxy.sql(alice, "select count(*)::int4 as n from todos where task like 'bob%'")[
        "rows"
    ] == [{"n": 0}]
    for query in (
        "update todos set task = 'pwned' where user_id = $1",
        "update todos set user_id = auth.user_id() where user_id = $1",
        "delete from todos where user_id = $1",
    ):
        assert proxy.sql(alice, query, [bob_id])["rowCount"] == 0
    assert tasks(proxy, bob) == ["bob 1", "bob 2"]


def test_a_user_cannot_insert_or_move_rows_to_another_owner(
    proxy: Proxy, users: dict[str, str]
) -> None:
    alice, bob = users["alice"], users["bob"]
    bob_id = proxy.sql(bob, "select auth.user_id() as u")["rows"][0]["u"]
    assert (
        error_code(proxy, alice, "insert into todos (user_id, task) values ($1, 'x')", [bob_id])
        == "42501"
    )
    assert error_code(proxy, alice, "update todos set user_id = $1", [bob_id]) == "42501"
    assert tasks(proxy, bob) == ["bob 1", "bob 2"]


def test_hand_set_claims_do_not_change_the_identity(proxy: Proxy, users: dict[str, str]) -> None:
    alice = users["alice"]
    alice_id = proxy.sql(alice, "select auth.user_id() as u")["rows"][0]["u"]
    forged = '{"sub": "bob", "role": "authenticated"}'
    response = proxy.post(
        {
            "queries": [
                {"query": "select set_config('request.jwt.claims', $1, false)", "params": [forged]},
                {"query": "select set_config('pg_session_jwt.jwt', $1, false)", "params": [forged]},
                {"query": "select auth.user_id() as u, auth.session() ->> 'sub' as s"},
            ]
        },
        alice,
    )
    assert response.json()["results"][2]["rows"] == [{"u": alice_id, "s": alice_id}]
    response = proxy.post(
        {
            "queries": [
                {
                    "query": "select set_config('auth.session_token', $1, false)",
                    "params": ["x.y.z"],
                },
                {"query": "select auth.user_id() as u"},
            ]
        },
        alice,
    )
    assert response.status_code == 400
    assert "bob" not in response.text
    # With its session token cleared, the statement has no identity at all: the claims
    # a Data API request carries in `request.jwt.claims` are never read in its place.
    response = proxy.post(
        {
            "queries": [
                {"query": "select set_config('auth.session_token', '', false)"},
                {"query": "select set_config('request.jwt.claims', $1, false)", "params": [forged]},
                {"query": "select auth.user_id() as u, auth.session() as s"},
            ]
        },
        alice,
    )
    assert response.json()["results"][2]["rows"] == [{"u": None, "s": None}]


def test_the_session_secret_is_out_of_reach(proxy: Proxy, users: dict[str, str]) -> None:
    alice = users["alice"]
    assert error_code(proxy, alice, "select * from auth_private.session_keys") == "42501"
    assert (
        error_code(proxy, alice, "select auth_private.install_session_key('mine', '\\x00'::bytea)")
        == "42501"
    )
    rows = proxy.sql(
        alice,
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'auth_private' and has_function_privilege(p.oid, 'execute')",
    )["rows"]
    assert rows == []


def test_set_role_and_reset_role_lead_nowhere(proxy: Proxy, users: dict[str, str]) -> None:
    alice = users["alice"]
    for role in ("neondb_owner", "postgres", "anonymous"):
        assert error_code(proxy, alice, f"set role {role}") == "42501"
    assert error_code(proxy, alice, "set session authorization postgres") == "42501"
    response = proxy.post(
        {
            "queries": [
                {"query": "reset role"},
                {"query": "select current_user as u, session_user as s"},
            ]
        },
        alice,
    )
    assert response.json()["results"][1]["rows"] == [{"u": "authenticated", "s": "authenticated"}]


@pytest.fixture
def one_backend(
    start_proxy: Callable[..., Proxy], neon_db: Any, main_jwks: str, ec_key: SigningKey
) -> tuple[Proxy, str, str]:
    """A proxy whose pool holds one connection, and two fresh users' tokens: whatever
    one user's request leaves on the backend, the other's next request meets."""
    single = start_proxy(base_config(neon_db, main_jwks, pool_size=1))
    alice = ec_key.sign(claims_for(f"alice-{uuid.uuid4()}"))
    bob = ec_key.sign(claims_for(f"bob-{uuid.uuid4()}"))
    return single, alice, bob


def test_session_state_does_not_survive_into_the_next_request(
    one_backend: tuple[Proxy, str, str],
) -> None:
    single, alice, bob = one_backend
    response = single.post(
        {
            "queries": [
                {"query": "select pg_backend_pid() as pid"},
                {"query": "select set_config('app.leak', 'alice-secret', false)"},
                {"query": "set work_mem = '77MB'"},
                {"query": "select pg_advisory_lock(4242)"},
                {"query": "listen leak_channel"},
                {"query": "prepare leaked as select 1"},
                {"query": "declare leaked_cursor cursor with hold for select 1"},
            ]
        },
        alice,
    )
    assert response.status_code == 200, response.text
    pid = response.json()["results"][0]["rows"][0]["pid"]
    assert error_code(single, alice, "create temp table leak (x int)") == "42501"

    after = single.sql(
        bob,
        "select pg_backend_pid() as pid, current_setting('app.leak', true) as leak,"
        " current_setting('work_mem') as work_mem,"
        " (select count(*)::int4 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) as locks,"
        " (select count(*)::int4 from pg_listening_channels()) as channels,"
        " (select count(*)::int4 from pg_prepared_statements where name = 'leaked') as prepared,"
        " (select count(*)::int4 from pg_cursors where name = 'leaked_cursor') as cursors,"
        " auth.user_id() as uid",
    )["rows"][0]
    assert after["pid"] == pid, "pool of size 1 must reuse the connection"
    assert after["leak"] in (None, "")
    assert after["work_mem"] != "77MB"
    assert (after["locks"], after["channels"], after["prepared"], after["cursors"]) == (0, 0, 0, 0)
    assert after["uid"].startswith("bob-")


def test_a_transaction_left_open_does_not_carry_into_the_next_request(
    one_backend: tuple[Proxy, str, str],
) -> None:
    single, alice, bob = one_backend
    pid = single.sql(alice, "select pg_backend_pid() as pid")["rows"][0]["pid"]
    assert single.sql(alice, "begin")["command"] == "BEGIN"
    since = datetime.now(UTC).isoformat()  # later than alice's transaction began
    after = single.sql(
        bob,
        "select pg_backend_pid() as pid, now() > $1::timestamptz as own_transaction,"
        " auth.user_id() as uid",
        [since],
    )["rows"][0]
    assert (after["pid"], after["own_transaction"]) == (pid, True)
    assert after["uid"].startswith("bob-")


def test_no_token_is_visible_in_pg_stat_activity(
    proxy: Proxy, ec_key: SigningKey, owner: psycopg.Connection
) -> None:
    token = ec_key.sign(claims_for(f"watcher-{uuid.uuid4()}"))
    result: dict[str, Any] = {}
    marker = f"sleep_{uuid.uuid4().hex[:8]}"
    request = threading.Thread(
        target=lambda: result.update(
            r=proxy.post({"query": f"select pg_sleep(1.5) as {marker}"}, token)
        )
    )
    request.start()
    seen: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and request.is_alive():
        rows = owner.execute("select row_to_json(a)::text from pg_stat_activity a").fetchall()
        seen.extend(r[0] for r in rows)
        if any(marker in r[0] for r in rows):
            break
        time.sleep(0.05)
    request.join(10)
    assert result["r"].status_code == 200
    activity = "\n".join(seen)
    assert marker in activity, "the request was not observed while running"
    assert token.split(".")[2] not in activity
    assert token.split(".")[1] not in activity
    assert "eyJ" not in activity  # no JWS of any kind (ours start with a base64 '{"')
