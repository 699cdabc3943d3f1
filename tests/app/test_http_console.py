"""The SQL console's token in an attacker's hands: RLS alone guards the rows.

`POST /sql/token` hands the browser its user's access token so that the page
can query the SQL endpoint itself. Bob takes his token and writes his own
SQL against Alice's rows, straight to the proxy; the superuser (who bypasses
RLS) checks afterwards that her rows are exactly as they were.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from stack.migrate import LocalDatabase
from tests.app.live import HTTP_TIMEOUT, Stack, csrf, log_in


def console_grant(stack: Stack, email: str) -> dict[str, Any]:
    browser = log_in(stack, email)
    token = csrf(browser, stack)
    added = browser.post(
        f"{stack.app_url}/todos",
        data={"task": f"{email}'s todo", "csrf_token": token},
        timeout=HTTP_TIMEOUT,
    )
    assert added.status_code == 200
    grant = browser.post(
        f"{stack.app_url}/sql/token", headers={"X-CSRFToken": token}, timeout=HTTP_TIMEOUT
    )
    assert grant.status_code == 200
    return grant.json()


def sql(grant: dict[str, Any], query: str, params: list[Any] | None = None) -> requests.Response:
    return requests.post(
        grant["endpoint"],
        json={"query": query, "params": params or []},
        headers={
            "Authorization": f"Bearer {grant['access_token']}",
            "Neon-Connection-String": grant["connection_string"],
        },
        timeout=HTTP_TIMEOUT,
    )


def all_rows(neon_db: LocalDatabase, sub: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(neon_db.superuser_url, connect_timeout=10) as conn:
        return conn.execute(
            "SELECT id, task, is_complete, user_id FROM todos WHERE user_id = %s ORDER BY id",
            [sub],
        ).fetchall()


@pytest.fixture
def bob_and_alice(stack: Stack, make_user) -> tuple[dict[str, Any], str]:
    """Bob's console grant, and Alice's subject (she has a todo)."""
    alice = make_user("console-alice@example.com")
    console_grant(stack, alice)
    return console_grant(stack, make_user("console-bob@example.com")), stack.users[alice]


def test_the_console_token_reads_only_its_own_rows(stack, bob_and_alice) -> None:
    bob, alice_sub = bob_and_alice
    seen = sql(bob, "SELECT user_id, task FROM todos")
    assert seen.status_code == 200
    rows = seen.json()["rows"]
    assert rows and {row["user_id"] for row in rows} == {stack.users["console-bob@example.com"]}
    who = sql(bob, "SELECT auth.user_id() AS sub")
    assert who.json()["rows"] == [{"sub": stack.users["console-bob@example.com"]}]
    targeted = sql(bob, "SELECT count(*) AS n FROM todos WHERE user_id = $1", [alice_sub])
    assert targeted.json()["rows"] == [{"n": "0"}]


@pytest.mark.parametrize(
    "attack",
    [
        "UPDATE todos SET task = 'pwned' WHERE user_id = $1",
        "UPDATE todos SET user_id = auth.user_id() WHERE user_id = $1",
        "DELETE FROM todos WHERE user_id = $1",
        "INSERT INTO todos (task, user_id) VALUES ('planted', $1)",
        "TRUNCATE todos",
        "ALTER TABLE todos DISABLE ROW LEVEL SECURITY",
    ],
)
def test_the_console_token_cannot_change_another_users_rows(neon_db, bob_and_alice, attack) -> None:
    bob, alice_sub = bob_and_alice
    before = all_rows(neon_db, alice_sub)
    assert before
    answer = sql(bob, attack, [alice_sub])
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 200 and answer.json()["command"] in ("UPDATE", "DELETE"):
        assert answer.json()["rowCount"] == 0
    assert all_rows(neon_db, alice_sub) == before


def test_the_data_api_page_gets_the_data_api_url_and_may_reach_it(stack: Stack, make_user) -> None:
    browser = log_in(stack, make_user("data-api-page@example.com"))
    page = browser.get(f"{stack.app_url}/data-api", timeout=HTTP_TIMEOUT)
    assert page.status_code == 200
    assert stack.data_api_url in page.text
    connect_src = next(
        part for part in page.headers["Content-Security-Policy"].split("; ")
        if part.startswith("connect-src")
    )  # fmt: skip
    assert connect_src == f"connect-src 'self' {stack.proxy_url}"
    grant = browser.post(
        f"{stack.app_url}/sql/token",
        headers={"X-CSRFToken": csrf(browser, stack)},
        timeout=HTTP_TIMEOUT,
    )
    assert grant.json()["data_api_url"] == stack.data_api_url
    script = browser.get(f"{stack.app_url}/static/vendor/postgrest-js.mjs", timeout=HTTP_TIMEOUT)
    assert script.headers["Content-Type"].startswith("text/javascript")


def test_the_vendored_postgrest_js_is_the_pinned_package_unmodified() -> None:
    """The browser runs exactly the package the Node tests run (`make vendor-js`)."""
    root = Path(__file__).parents[2]
    vendored = root / "app" / "static" / "vendor" / "postgrest-js.mjs"
    package = root / "tests" / "data_api" / "js" / "node_modules" / "@supabase" / "postgrest-js"
    assert package.is_dir(), "postgrest-js is not installed: run `make test`"
    assert (package / "dist" / "index.mjs").read_bytes() == vendored.read_bytes()
    pinned = json.loads((package.parents[2] / "package.json").read_text())
    assert (
        pinned["dependencies"]["@supabase/postgrest-js"]
        in (root / "app/static/vendor/README.md").read_text()
    )
