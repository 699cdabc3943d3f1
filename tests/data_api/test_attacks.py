"""The Data API as an attacker sees it: roles, filters, injection, malformed input."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stack.migrate import LocalDatabase
from tests.data_api.conftest import Client
from tests.proxy.support import HTTP_TIMEOUT, Proxy, SigningKey, claims_for


def user() -> str:
    return f"atk-{uuid.uuid4().hex[:10]}"


def call(proxy: Proxy, token: str | None, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers |= kw.pop("headers", {})
    return requests.request(
        method, f"{proxy.url}/neondb/rest/v1/{path}", headers=headers, timeout=HTTP_TIMEOUT, **kw
    )


def rows_of(neon_db: LocalDatabase, sub: str) -> list[tuple]:
    with psycopg.connect(neon_db.superuser_url, connect_timeout=10) as conn:
        return conn.execute(
            "SELECT task, is_complete FROM todos WHERE user_id = %s ORDER BY id", [sub]
        ).fetchall()


@pytest.fixture
def victim(rest: Client) -> str:
    sub = user()
    rest(sub).table("todos").insert([{"task": "secret 1"}, {"task": "secret 2"}]).execute()
    return sub


@pytest.mark.parametrize("role", ["neondb_owner", "postgres", "pg_read_all_data", "nobody"])
def test_a_token_naming_a_role_authenticator_may_not_become_is_refused(
    proxy: Proxy, ec_key: SigningKey, neon_db: LocalDatabase, victim: str, role: str
) -> None:
    token = ec_key.sign(claims_for(user()) | {"role": role})
    for method, kw in (("GET", {}), ("DELETE", {}), ("PATCH", {"json": {"task": "x"}})):
        response = call(proxy, token, method, "todos", **kw)
        assert response.status_code == 401, response.text
        assert set(response.json()) == {"code", "message", "details", "hint"}
    assert rows_of(neon_db, victim) == [("secret 1", False), ("secret 2", False)]


def test_a_token_without_a_role_is_the_anonymous_role_and_sees_nothing(
    proxy: Proxy, ec_key: SigningKey, victim: str
) -> None:
    token = ec_key.sign(claims_for(victim))  # the victim's own sub, but no role
    assert call(proxy, token, "GET", "todos").json() == []
    refused = call(proxy, token, "POST", "todos", json={"task": "x"})
    assert refused.status_code == 401 and refused.json()["code"] == "42501"


def test_filters_cannot_reach_other_users_rows(rest: Client, victim: str) -> None:
    attacker = rest(user())
    for query in (
        attacker.table("todos").select("*").eq("user_id", victim),
        attacker.table("todos").select("*").or_(f"user_id.eq.{victim},task.like.*"),
        attacker.table("todos").select("*").not_.eq("user_id", "nobody"),
        attacker.table("todos").select("*").is_("user_id", "null").or_("task.neq.x"),
    ):
        assert query.execute().data == []


def test_unfiltered_patch_and_delete_change_only_the_callers_rows(
    rest: Client, neon_db: LocalDatabase, victim: str
) -> None:
    me = user()
    mine = rest(me)
    mine.table("todos").insert({"task": "mine"}).execute()
    assert [r["task"] for r in mine.table("todos").update({"task": "all?"}).execute().data] == [
        "all?"
    ]
    mine.table("todos").delete().execute()
    assert rows_of(neon_db, me) == []
    assert rows_of(neon_db, victim) == [("secret 1", False), ("secret 2", False)]


@pytest.mark.parametrize(
    "query",
    [
        "select=task);drop table todos;--",
        'select=task"',
        "select=*,(select 1)",
        "order=task;drop table todos",
        'order="task"',
        "id=in.(1,2);delete from todos",
        "select=task::text;drop",
        "select=task::regclass",
        "or=(task.eq.a,user_id.eq.b))",
        "or=task.eq.a",
        "task=nope.x",
        "task=is.maybe",
        "limit=-1",
        "offset=1e3",
        "select=todos.task",
        "task->>x=eq.1",
    ],
)
def test_injection_and_malformed_queries_are_400_and_run_nothing(
    proxy: Proxy, rest: Client, ec_key: SigningKey, neon_db: LocalDatabase, victim: str, query: str
) -> None:
    token = ec_key.sign(claims_for(user()) | {"role": "authenticated"})
    response = requests.get(
        f"{proxy.url}/neondb/rest/v1/todos?{query}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 400, (query, response.text)
    assert response.json()["code"] in ("PGRST100", "42703")
    assert rows_of(neon_db, victim) == [("secret 1", False), ("secret 2", False)]


def test_values_are_parameters_never_sql(rest: Client, neon_db: LocalDatabase, victim: str) -> None:
    attacker = rest(user())
    for value in ("x');drop table todos;--", "' or '1'='1", "*", "%", "\\", '"'):
        assert attacker.table("todos").select("*").eq("task", value).execute().data == []
        assert attacker.table("todos").select("*").in_("task", [value, "a,b"]).execute().data == []
    assert rows_of(neon_db, victim) == [("secret 1", False), ("secret 2", False)]


@pytest.mark.parametrize(
    ("method", "path", "kw", "status"),
    [
        ("POST", "todos", {"data": b"{not json"}, 400),
        ("POST", "todos", {"json": "a string"}, 400),
        ("POST", "todos", {"json": []}, 400),
        ("POST", "todos", {"json": [1, 2]}, 400),
        ("PATCH", "todos", {"json": []}, 400),
        ("POST", "todos", {"data": b"[" * 5000}, 400),
        ("POST", "todos", {"json": {"nosuchcolumn": 1}}, 400),
        ("GET", "todos/1", {}, 404),
        ("GET", "rpc/nosuchfunction", {}, 404),
        ("PUT", "todos", {"json": {}}, 405),
        ("GET", "todos", {"headers": {"Range": "9-1"}}, 416),
        ("GET", "todos", {"headers": {"Accept-Profile": "auth_private"}}, 406),
        ("POST", "todos", {"headers": {"Content-Profile": "pg_catalog"}, "json": {}}, 406),
    ],
)
def test_bad_requests_are_precise_4xx(
    proxy: Proxy, ec_key: SigningKey, method: str, path: str, kw: dict, status: int
) -> None:
    token = ec_key.sign(claims_for(user()) | {"role": "authenticated"})
    response = call(proxy, token, method, path, **kw)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"code", "message", "details", "hint"}


def test_no_token_a_forged_token_and_an_unknown_endpoint_are_refused(
    proxy: Proxy, ec_key: SigningKey
) -> None:
    assert call(proxy, None, "GET", "todos").status_code == 401
    forged = ec_key.sign(claims_for(user()) | {"role": "authenticated"})[:-4] + "AAAA"
    assert call(proxy, forged, "GET", "todos").status_code == 401
    other_host = call(
        proxy, ec_key.sign(claims_for(user())), "GET", "todos", headers={"Host": "ep-x.example"}
    )
    assert other_host.status_code == 404


def test_the_preflight_is_neons(proxy: Proxy) -> None:
    response = requests.options(
        f"{proxy.url}/neondb/rest/v1/todos",
        headers={
            "Origin": "http://127.0.0.1:8000",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "prefer,content-type",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200
    assert (
        response.headers["Access-Control-Allow-Methods"] == "GET, POST, PATCH, PUT, DELETE, OPTIONS"
    )
    assert response.headers["Access-Control-Allow-Headers"] == "prefer,content-type, Authorization"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.lists(
        st.tuples(
            st.sampled_from(["select", "order", "or", "and", "task", "id", "limit", "x", "not.or"]),
            st.text(max_size=40),
        ),
        max_size=4,
    )
)
def test_any_query_string_is_answered_without_a_5xx(
    proxy: Proxy, ec_key: SigningKey, query: list[tuple[str, str]]
) -> None:
    token = ec_key.sign(claims_for("fuzz") | {"role": "authenticated"})
    response = requests.get(
        f"{proxy.url}/neondb/rest/v1/todos",
        params=query,
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code < 500, (query, response.text)
