"""Only tokens meant for the database open it: the attacks of issue 9, against the live stack.

The proxy requires the database audience, as `make run` and the README's Neon
steps configure it. The todo app's access token and an operator's minted token
carry it; an ID token, a third-party client's token and a service posing as a
user do not, and are refused before any SQL runs, on `/sql` and on the Data API alike.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import psycopg
import pytest
import requests

from issuer.config import DEFAULT_DATABASE_AUDIENCE
from issuer.db import get_engine
from issuer.oauth import clients
from issuer.oauth.clients import Registration
from issuer.tokens import mint_access_token
from stack.migrate import LocalDatabase
from tests.app.live import HTTP_TIMEOUT, Stack, hidden_field, log_in, login_row

CONNECTION = "postgresql://authenticated@localhost/neondb"
THIRD_PARTY_CALLBACK = "http://127.0.0.1:9/callback"  # never followed


def run_sql(stack: Stack, token: str, query: str, params: list[Any] | None = None, **kw: str):
    return requests.post(
        stack.sql_url,
        json={"query": query, "params": params or []},
        headers={
            "Authorization": f"Bearer {token}",
            "Neon-Connection-String": kw.get("connection", CONNECTION),
        },
        timeout=HTTP_TIMEOUT,
    )


def rest(stack: Stack, token: str, method: str, table: str, **kw: Any) -> requests.Response:
    """A Data API request, as postgrest-py sends one."""
    headers = {"Authorization": f"Bearer {token}", "Prefer": "return=representation"}
    return requests.request(
        method, f"{stack.data_api_url}/{table}", headers=headers, timeout=HTTP_TIMEOUT, **kw
    )


def assert_refused_on_the_data_api(stack: Stack, token: str) -> None:
    """Neither a read nor a write: 401 with the proxy's reason, as on `/sql` (400 there)."""
    for method, kw in (("GET", {}), ("POST", {"json": {"task": "via the wrong token"}})):
        refused = rest(stack, token, method, "todos", **kw)
        assert refused.status_code == 401, refused.text
        assert refused.json()["message"] == "invalid JWT token audience"
    assert rest(stack, token, "DELETE", "todos", params={"id": "gt.0"}).status_code == 401


def todos_of(neon_db: LocalDatabase, sub: str) -> int:
    with psycopg.connect(neon_db.superuser_url, connect_timeout=10) as conn:
        return conn.execute("SELECT count(*) FROM todos WHERE user_id = %s", [sub]).fetchone()[0]


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def register(stack: Stack, **fields: Any) -> tuple[clients.Client, str | None]:
    with stack.issuer.app_context():
        return clients.register(get_engine(), Registration(**fields))


def authorize(stack: Stack, browser: requests.Session, client_id: str, **extra: str) -> dict:
    """Through the issuer's pages (consent included) to the client's callback's query."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": THIRD_PARTY_CALLBACK,
        "scope": "openid email",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    url = f"{stack.issuer_url}/authorize?{urlencode(params)}"
    page = browser.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    if page.status_code == 200:  # the consent page
        page = browser.post(
            url,
            data={"csrf_token": hidden_field(page.text, "csrf_token"), "allow": "Allow"},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
    assert page.status_code == 302, page.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(page.headers["Location"]).query).items()}
    query["verifier"] = verifier
    return query


def redeem(stack: Stack, client_id: str, query: dict) -> dict:
    response = requests.post(
        f"{stack.issuer_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": THIRD_PARTY_CALLBACK,
            "code_verifier": query["verifier"],
            "client_id": client_id,
        },
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def alice(stack: Stack, make_user) -> tuple[str, requests.Session]:
    """Alice, logged in to the todo app, with one todo."""
    email = make_user(f"audience-{secrets.token_hex(4)}@example.com")
    browser = log_in(stack, email)
    assert (
        run_sql(
            stack,
            login_row(stack.app, browser).access_token,
            "insert into todos (task) values ('mine')",
        ).status_code
        == 200
    )
    return stack.users[email], browser


def test_the_todo_apps_access_token_opens_the_database(stack: Stack, alice) -> None:
    sub, browser = alice
    token = login_row(stack.app, browser).access_token
    assert claims(token)["aud"] == DEFAULT_DATABASE_AUDIENCE
    answer = run_sql(stack, token, "select auth.user_id() as sub, count(*)::int as n from todos")
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [{"sub": sub, "n": 1}]
    over_rest = rest(stack, token, "GET", "todos", params={"select": "task,user_id"})
    assert over_rest.status_code == 200, over_rest.text
    assert over_rest.json() == [{"task": "mine", "user_id": sub}]


def test_an_id_token_is_refused_and_runs_nothing(stack: Stack, neon_db, alice) -> None:
    sub, browser = alice
    id_token = login_row(stack.app, browser).id_token
    assert claims(id_token)["sub"] == sub
    refused = run_sql(stack, id_token, "insert into todos (task) values ('via id token')")
    assert refused.status_code == 400
    assert refused.json()["message"] == "invalid JWT token audience"
    assert_refused_on_the_data_api(stack, id_token)
    assert todos_of(neon_db, sub) == 1


def test_a_third_party_clients_token_is_refused(stack: Stack, neon_db, alice) -> None:
    """It asked for no scope beyond sign-in, and its consent page said only that."""
    sub, browser = alice
    spy, _ = register(stack, name="Quiz game", public=True, redirect_uris=(THIRD_PARTY_CALLBACK,))
    asked = authorize(stack, browser, spy.client_id, resource=DEFAULT_DATABASE_AUDIENCE)
    assert asked["error"] == "invalid_target"
    tokens = redeem(stack, spy.client_id, authorize(stack, browser, spy.client_id))
    for token in (tokens["access_token"], tokens["id_token"]):
        refused = run_sql(stack, token, "delete from todos")
        assert refused.status_code == 400
        assert refused.json()["message"] == "invalid JWT token audience"
        assert_refused_on_the_data_api(stack, token)
    assert todos_of(neon_db, sub) == 1


def test_a_third_party_client_allowed_the_database_gets_it_after_consent(
    stack: Stack, alice
) -> None:
    sub, browser = alice
    partner, _ = register(
        stack,
        name="Partner app",
        public=True,
        redirect_uris=(THIRD_PARTY_CALLBACK,),
        audiences=(DEFAULT_DATABASE_AUDIENCE,),
    )
    tokens = redeem(
        stack,
        partner.client_id,
        authorize(stack, browser, partner.client_id, resource=DEFAULT_DATABASE_AUDIENCE),
    )
    answer = run_sql(stack, tokens["access_token"], "select auth.user_id() as sub")
    assert answer.json()["rows"] == [{"sub": sub}]


def test_an_operators_minted_token_opens_the_database(stack: Stack, alice) -> None:
    sub, _ = alice
    with stack.issuer.app_context():
        config = stack.issuer.config["ISSUER"]
        token = mint_access_token(
            stack.issuer.extensions["keyring"],
            issuer=config.issuer_url,
            subject=sub,
            audience=config.database_audience,
            ttl=60,
        )
    answer = run_sql(stack, token, "select count(*)::int as n from todos")
    assert answer.json()["rows"] == [{"n": 1}]


def test_a_service_registered_under_a_users_id_cannot_read_the_users_rows(
    stack: Stack, neon_db, alice
) -> None:
    sub, _ = alice
    service, secret = register(
        stack,
        name="impostor",
        client_id=sub,
        grant_types=("client_credentials",),
        audiences=(DEFAULT_DATABASE_AUDIENCE,),
    )
    response = requests.post(
        f"{stack.issuer_url}/token",
        data={"grant_type": "client_credentials"},
        auth=(service.client_id, secret),
        timeout=HTTP_TIMEOUT,
    )
    token = response.json()["access_token"]
    assert claims(token)["sub"] == f"{sub}@clients"
    seen = run_sql(stack, token, "select count(*)::int as n from todos")
    assert seen.json()["rows"] == [{"n": 0}]
    run_sql(stack, token, "update todos set task = 'owned'")
    run_sql(stack, token, "delete from todos")
    assert rest(stack, token, "GET", "todos").json() == []
    assert (
        rest(stack, token, "PATCH", "todos", params={"id": "gt.0"}, json={"task": "owned"}).json()
        == []
    )
    assert rest(stack, token, "DELETE", "todos", params={"id": "gt.0"}).json() == []
    assert todos_of(neon_db, sub) == 1


@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_a_database_without_the_session_functions_is_refused_and_left_closed(
    stack: Stack, neon_db: LocalDatabase, alice, database: str
) -> None:
    _, browser = alice
    token = login_row(stack.app, browser).access_token
    connection = f"postgresql://authenticated@localhost/{database}"
    for _ in range(2):
        refused = run_sql(stack, token, "select 1", connection=connection)
        assert refused.status_code == 400, refused.text
        assert "is not set up for authenticated access" in refused.json()["message"]
        over_rest = requests.get(
            f"{stack.proxy_url}/{database}/rest/v1/todos",
            headers={"Authorization": f"Bearer {token}"},
            timeout=HTTP_TIMEOUT,
        )
        assert over_rest.status_code == 400, over_rest.text
        assert "is not set up for authenticated access" in over_rest.json()["message"]
    # No pooled connection lingers: template1 is free to copy.
    with psycopg.connect(neon_db.superuser_url, autocommit=True, connect_timeout=10) as conn:
        name = f"made_from_{database}_{secrets.token_hex(3)}"
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"DROP DATABASE {name}")
