"""End to end in a real headless Chromium: sign up, todos, isolation under
RLS, SQL from the browser, what the database sees, and logging out.

Each person has a browser context of their own (their own cookie jar); the
stack behind the browser is the live one of tests/app/live.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import Response, expect

from issuer.config import DEFAULT_DATABASE_AUDIENCE as DATABASE_AUDIENCE
from issuer.db import get_engine
from issuer.oauth import clients
from issuer.oauth.clients import Registration
from tests.app.browser import ENHANCED_FORM, MakeUser, OpenPerson, run_sql
from tests.app.live import Stack
from tests.support.servers import LiveServer

pytestmark = pytest.mark.browser

WITH_AND_WITHOUT_JS = [
    pytest.param(True, id="javascript"),
    pytest.param(False, id="no-javascript"),
]
CONNECTION_STRING = "postgresql://authenticated@localhost/neondb"
INSUFFICIENT_PRIVILEGE = "42501"


def _blank_page(_environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [b"<!doctype html><title>Somewhere else</title><p>Nothing to see here.</p>"]


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[LiveServer]:
    """A page of another origin on the same host (so the same site, for cookies)."""
    server = LiveServer("localhost")
    server.app = _blank_page
    yield server
    server.stop()


def _posted_to(path: str) -> Callable[[Response], bool]:
    return lambda response: (
        response.request.method == "POST" and urlsplit(response.url).path == path
    )


@pytest.mark.parametrize("javascript", WITH_AND_WITHOUT_JS)
def test_sign_up_then_add_toggle_edit_and_delete(person: OpenPerson, javascript: bool) -> None:
    alice = person(javascript=javascript)
    email = f"alice.signup.{'js' if javascript else 'nojs'}@example.com"
    alice.sign_up(email)
    alice.expect_todos([])

    alice.add("buy milk")
    alice.expect_todos(["buy milk"])
    alice.add("write tests")
    alice.expect_todos(["write tests", "buy milk"])
    alice.add("ship it")
    alice.expect_todos(["ship it", "write tests", "buy milk"])

    alice.mark_done("write tests")
    alice.expect_todos(["ship it", "write tests", "buy milk"], done=("write tests",))
    alice.mark_not_done("write tests")
    alice.expect_todos(["ship it", "write tests", "buy milk"])

    alice.edit("buy milk", "buy oat milk")
    alice.expect_todos(["ship it", "write tests", "buy oat milk"])

    alice.delete("ship it")
    alice.expect_todos(["write tests", "buy oat milk"])

    # What the page showed is what the server stored.
    alice.reload()
    alice.expect_signed_in(email)
    alice.expect_todos(["write tests", "buy oat milk"])

    # With JavaScript the list forms post in the background (and deleting
    # asks first); without it they are plain form posts, and still work.
    kinds = {kind for kind, path in alice.posts if ENHANCED_FORM.match(path)}
    assert kinds == ({"fetch"} if javascript else {"document"}), alice.posts
    assert alice.dialogs == (["Delete this todo?"] if javascript else [])


@pytest.mark.parametrize("javascript", WITH_AND_WITHOUT_JS)
def test_empty_task_is_refused_inline(
    person: OpenPerson, make_user: MakeUser, javascript: bool
) -> None:
    erin = person(javascript=javascript)
    erin.log_in(make_user(f"erin.empty.{'js' if javascript else 'nojs'}@example.com"))
    erin.add("keep me")
    page = erin.page

    for raw in ("", "   "):
        erin.reload()
        expect(page.locator("#task-error")).to_have_count(0)
        page.get_by_label("New todo").fill(raw)
        with page.expect_response(_posted_to("/todos")) as answer:
            page.get_by_role("button", name="Add", exact=True).click()
        assert answer.value.status == 400
        expect(page.get_by_role("alert")).to_have_text("A todo needs some text.")
        expect(page.get_by_label("New todo")).to_have_attribute("aria-invalid", "true")
        erin.expect_todos(["keep me"])
        if javascript:
            # The enhanced form leaves the address bar on a page that reloads.
            page.reload()
            erin.expect_todos(["keep me"])

    # Emptying a todo's text is refused the same way, and changes nothing.
    erin.reload()
    (todo_id,) = erin.todo_ids()
    page.get_by_role("link", name="Edit: keep me", exact=True).click()
    page.get_by_label("Text").fill(" ")
    with page.expect_response(_posted_to(f"/todos/{todo_id}/edit")) as answer:
        page.get_by_role("button", name="Save").click()
    assert answer.value.status == 400
    expect(page.get_by_role("alert")).to_have_text("A todo needs some text.")

    erin.reload()
    erin.expect_todos(["keep me"])


def test_bob_cannot_see_or_change_alices_todos(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    alice = person()
    alice.log_in(make_user("alice.rls@example.com"))
    alice.add("alice: pay rent")
    alice.add("alice: call mum")
    alice.mark_done("alice: pay rent")
    alice_todos = (["alice: call mum", "alice: pay rent"], ("alice: pay rent",))
    alice_ids = alice.todo_ids()
    alice_sub = alice.database_user_id()
    assert alice_sub == stack.users["alice.rls@example.com"]

    bob = person()
    bob.log_in(make_user("bob.rls@example.com"))
    bob.expect_todos([])
    bob.add("bob: water plants")
    bob.expect_todos(["bob: water plants"])

    # Through the app: Alice's todo simply is not there for Bob.
    answer = bob.page.goto(f"{stack.app_url}/todos/{alice_ids[0]}/edit")
    assert answer is not None
    assert answer.status == 404
    expect(bob.page.get_by_role("heading", level=1)).to_have_text("Not Found")

    # Straight at the SQL endpoint with Bob's own token: RLS is all there is.
    bob.reload()
    grant = bob.access_token()
    assert grant["endpoint"] == stack.sql_url
    assert grant["connection_string"] == CONNECTION_STRING
    assert grant["expires_at"] > time.time()

    seen = run_sql(grant, "SELECT task, user_id FROM todos")
    assert seen.status_code == 200, seen.text
    assert seen.json()["rows"] == [
        {"task": "bob: water plants", "user_id": stack.users["bob.rls@example.com"]}
    ]
    by_owner = run_sql(grant, "SELECT id FROM todos WHERE user_id = $1", [alice_sub])
    assert by_owner.status_code == 200, by_owner.text
    assert by_owner.json()["rows"] == []

    # (statement, parameters, rows it may change: Bob's own only)
    for statement, params, changes in (
        (
            "UPDATE todos SET task = 'pwned', is_complete = false WHERE id = ANY($1::bigint[])",
            [alice_ids],
            0,
        ),
        ("UPDATE todos SET task = 'pwned' WHERE user_id = $1", [alice_sub], 0),
        ("DELETE FROM todos WHERE id = ANY($1::bigint[])", [alice_ids], 0),
        ("DELETE FROM todos WHERE user_id = $1", [alice_sub], 0),
        ("UPDATE todos SET task = 'pwned' WHERE true", [], 1),
    ):
        changed = run_sql(grant, statement, params)
        assert changed.status_code == 200, (statement, changed.text)
        assert changed.json()["rowCount"] == changes, (statement, changed.json())

    planted = run_sql(
        grant, "INSERT INTO todos (task, user_id) VALUES ('from bob', $1)", [alice_sub]
    )
    assert planted.status_code == 400, planted.text
    assert planted.json()["code"] == INSUFFICIENT_PRIVILEGE, planted.json()
    handed_over = run_sql(grant, "UPDATE todos SET user_id = $1", [alice_sub])
    assert handed_over.status_code == 400, handed_over.text
    assert handed_over.json()["code"] == INSUFFICIENT_PRIVILEGE, handed_over.json()

    # Alice's own session still shows her todos exactly as she left them.
    alice.reload()
    alice.expect_todos(*alice_todos)
    assert alice.todo_ids() == alice_ids
    bob.reload()
    bob.expect_todos(["pwned"])


def test_sql_console_reaches_only_own_rows(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    alice = person()
    alice.log_in(make_user("alice.console@example.com"))
    alice.add("alice: diary")

    bob = person()
    bob.log_in(make_user("bob.console@example.com"))
    bob.add("bob: one")
    bob.add("bob: two")
    bob_sub = stack.users["bob.console@example.com"]

    page = bob.page
    page.get_by_role("link", name="SQL from the browser").click()
    status = page.locator("#console-status")
    cells = page.locator("#console-result tbody td")

    page.get_by_role("button", name="Count every row").click()
    expect(status).to_have_text("SELECT — 1 row(s)")
    expect(cells).to_have_text(["2"])

    page.get_by_label("SQL").fill("SELECT id, task, is_complete, user_id FROM todos ORDER BY id")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(status).to_have_text("SELECT — 2 row(s)")
    expect(page.locator("#console-result th")).to_have_text(
        ["id", "task", "is_complete", "user_id"]
    )
    expect(page.locator("#console-result tbody td:nth-child(2)")).to_have_text(
        ["bob: one", "bob: two"]
    )
    expect(page.locator("#console-result tbody td:nth-child(4)")).to_have_text([bob_sub, bob_sub])

    page.get_by_role("button", name="Change others' todos").click()
    expect(status).to_have_text("UPDATE — 0 row(s)")
    expect(cells).to_have_count(0)

    page.get_by_label("SQL").fill("SELEC id FROM todos")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(status).to_have_text('The database refused: syntax error at or near "SELEC" (42601)')
    expect(status).to_have_class("error")

    alice_sub = stack.users["alice.console@example.com"]
    page.get_by_label("SQL").fill(f"INSERT INTO todos (task, user_id) VALUES ('x', '{alice_sub}')")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(status).to_have_text(
        'The database refused: new row violates row-level security policy for table "todos"'
        f" ({INSUFFICIENT_PRIVILEGE})"
    )

    alice.reload()
    alice.expect_todos(["alice: diary"])
    bob.reload()
    bob.expect_todos(["bob: two", "bob: one"])


def test_data_api_page_reaches_only_own_rows_with_postgrest_js(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    alice = person()
    alice.log_in(make_user("alice.rest@example.com"))
    alice.add("alice: diary")

    bob = person()
    bob.log_in(make_user("bob.rest@example.com"))
    bob.add("bob: one")
    bob_sub = stack.users["bob.rest@example.com"]

    page = bob.page
    page.get_by_role("link", name="Data API from the browser").click()
    expect(page.get_by_test_id("data-api-url")).to_have_text(stack.data_api_url)
    status = page.locator("#data-api-status")
    call = page.get_by_test_id("data-api-call")

    page.get_by_label("A new todo").fill("bob: two, from postgrest-js")
    page.get_by_role("button", name="Add it").click()
    expect(status).to_have_text("HTTP 201 — 1 row(s)")
    expect(call).to_have_text(
        'db.from("todos").insert({ task: "bob: two, from postgrest-js" }).select()'
    )

    page.get_by_role("button", name="My todos").click()
    expect(status).to_have_text("HTTP 200 — 2 row(s)")
    expect(page.locator("#data-api-result th")).to_have_text(
        ["id", "task", "is_complete", "user_id"]
    )
    expect(page.locator("#data-api-result tbody td:nth-child(2)")).to_have_text(
        ["bob: one", "bob: two, from postgrest-js"]
    )
    expect(page.locator("#data-api-result tbody td:nth-child(4)")).to_have_text([bob_sub, bob_sub])

    page.get_by_role("button", name="Count every row").click()
    expect(status).to_have_text("HTTP 200 — count 2")
    for action in ("Change others' todos", "Delete others' todos"):
        page.get_by_role("button", name=action).click()
        expect(call).to_contain_text(f'.neq("user_id", "{bob_sub}")')
        expect(status).to_have_text(re.compile(r"HTTP 20[04] — 0 row\(s\)"))

    page.get_by_role("button", name="whoami()").click()
    expect(status).to_have_text("HTTP 200 — a value")
    seen = json.loads(page.locator("#data-api-result pre").inner_text())
    assert (seen["role"], seen["user_id"], seen["visible_todos"]) == ("authenticated", bob_sub, 2)

    page.get_by_label("A new todo").fill("")
    page.get_by_role("button", name="Add it").click()
    expect(status).to_have_text(
        re.compile(r"The Data API refused \(400\): .*todos_task_check.* \(23514\)")
    )
    expect(status).to_have_class("error")

    alice.reload()
    alice.expect_todos(["alice: diary"])
    bob.reload()
    bob.expect_todos(["bob: two, from postgrest-js", "bob: one"])


def test_session_page_shows_what_the_database_sees(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    email = make_user("carol.session@example.com")
    carol = person()
    carol.log_in(email)
    carol.add("one")
    carol.add("two")

    page = carol.page
    page.get_by_role("link", name="What the database sees").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What the database sees")
    expect(page.get_by_test_id("db-role")).to_have_text("authenticated")
    expect(page.get_by_test_id("db-user-id")).to_have_text(stack.users[email])
    expect(page.get_by_test_id("db-visible")).to_have_text("2")
    claims = json.loads(page.get_by_test_id("db-session").inner_text())
    assert claims["sub"] == stack.users[email]
    assert claims["iss"] == stack.issuer_url
    assert claims["exp"] > time.time()


def test_log_out_ends_the_session_at_app_and_issuer(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    email = make_user("dave.logout@example.com")
    dave = person()
    dave.log_in(email)
    dave.add("dave: secret plan")
    cookies = dave.page.context.cookies()
    assert {"app_session", "issuer_session"} <= {cookie["name"] for cookie in cookies}

    # Control: while the session lives, its cookies replayed elsewhere are logged in.
    replay = person()
    replay.page.context.add_cookies(cookies)
    replay.reload()
    replay.expect_signed_in(email)
    replay.page.goto(f"{stack.issuer_url}/account")
    expect(replay.page.get_by_role("heading", level=1)).to_have_text("Your account")

    dave.page.get_by_role("button", name="Log out").click()
    dave.expect_signed_out()
    # "Back" does not bring the list back from a cache.
    dave.page.go_back()
    expect(dave.page.get_by_text("dave: secret plan")).to_have_count(0)
    dave.expect_signed_out()
    dave.page.get_by_role("link", name="Log in", exact=True).click()
    dave.expect_password_form()

    # The old cookies are dead on both servers, not merely dropped by the browser.
    stale = person()
    stale.page.context.add_cookies(cookies)
    stale.reload()
    stale.expect_signed_out()
    stale.page.goto(f"{stack.issuer_url}/account")
    stale.expect_password_form()


def test_hostile_todo_text_stays_text(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    mallory = person()
    mallory.log_in(make_user("mallory.xss@example.com"))
    page = mallory.page
    hostile = """"'><img src=x onerror="alert(1)"><script>alert(2)</script>"""
    markup = page.locator("main img, main script")

    mallory.add(hostile)
    mallory.expect_todos([hostile])
    expect(markup).to_have_count(0)

    (todo_id,) = mallory.todo_ids()
    page.goto(f"{stack.app_url}/todos/{todo_id}/edit")
    expect(page.get_by_label("Text")).to_have_value(hostile)
    expect(markup).to_have_count(0)

    page.get_by_role("link", name="SQL from the browser").click()
    page.get_by_label("SQL").fill("SELECT task FROM todos")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#console-result tbody td")).to_have_text([hostile])
    expect(markup).to_have_count(0)

    assert mallory.dialogs == []


# Run by a page of another origin, with the logged-in user's cookies in the jar.
_TAKE_TOKEN = """async (app) => {
  const attempts = {
    list_page: () => fetch(app + "/", {credentials: "include"}),
    token: () => fetch(app + "/sql/token", {method: "POST", credentials: "include"}),
    token_with_header: () => fetch(app + "/sql/token", {
      method: "POST", credentials: "include", headers: {"X-CSRFToken": "guess"},
    }),
  };
  const outcome = {};
  for (const [name, attempt] of Object.entries(attempts)) {
    try { outcome[name] = (await attempt()).status; } catch (error) { outcome[name] = error.name; }
  }
  return outcome;
}"""


def test_another_origin_cannot_take_the_token_or_post(
    person: OpenPerson, stack: Stack, make_user: MakeUser, elsewhere: LiveServer
) -> None:
    bob = person()
    bob.log_in(make_user("bob.cors@example.com"))
    bob.add("bob: keep")
    page = bob.page

    page.goto(elsewhere.url)
    outcome = page.evaluate(_TAKE_TOKEN, stack.app_url)
    # No CORS grant: the browser hands the script nothing to read.
    assert outcome == {
        "list_page": "TypeError",
        "token": "TypeError",
        "token_with_header": "TypeError",
    }

    # A form posted from there carries the cookie (same site) but no CSRF token.
    with page.expect_response(_posted_to("/todos")) as answer:
        page.evaluate(
            """(action) => {
              const form = document.createElement("form");
              form.method = "post";
              form.action = action;
              const task = document.createElement("input");
              task.name = "task";
              task.value = "planted from elsewhere";
              form.append(task);
              document.body.append(form);
              form.submit();
            }""",
            f"{stack.app_url}/todos",
        )
    assert answer.value.status == 400
    expect(page).to_have_url(f"{stack.app_url}/todos")
    expect(page.get_by_role("heading", level=1)).to_have_text("This form has expired")

    bob.reload()
    bob.expect_todos(["bob: keep"])


class ThirdPartyApp:
    """Another company's app on its own origin: a public OAuth client of the issuer
    that signs users in and keeps whatever its callback receives."""

    def __init__(self) -> None:
        self.server = LiveServer()
        self.server.app = self._serve
        self.callback = f"{self.server.url}/callback"
        self.received: list[dict[str, str]] = []

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/callback":
            query = parse_qs(environ["QUERY_STRING"])
            self.received.append({k: v[0] for k, v in query.items()})
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [b"<!doctype html><title>Quiz game</title><h1>Welcome to the quiz</h1>"]

    def authorize_url(self, stack: Stack, client_id: str, challenge: str, **extra: str) -> str:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": self.callback,
            "scope": "openid email",
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{stack.issuer_url}/authorize?{urlencode(params)}"


def test_a_third_party_app_signs_alice_in_but_its_tokens_cannot_reach_the_database(
    person: OpenPerson, stack: Stack, make_user: MakeUser
) -> None:
    email = make_user("alice.thirdparty@example.com")
    alice = person()
    alice.log_in(email)
    alice.add("alice: only mine")
    quiz = ThirdPartyApp()
    with stack.issuer.app_context():
        client, _ = clients.register(
            get_engine(),
            Registration(name="Quiz game", public=True, redirect_uris=(quiz.callback,)),
        )
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    try:
        # Asking for the database is refused outright: the client may not have it.
        alice.page.goto(
            quiz.authorize_url(stack, client.client_id, challenge, resource=DATABASE_AUDIENCE)
        )
        expect(alice.page.get_by_role("heading", level=1)).to_have_text("Welcome to the quiz")
        assert quiz.received[-1]["error"] == "invalid_target"

        # Signing in is what the consent page offers, and all the app gets.
        alice.page.goto(quiz.authorize_url(stack, client.client_id, challenge))
        expect(alice.page.get_by_role("heading", level=1)).to_have_text("Allow Quiz game?")
        expect(alice.page.get_by_text("asks to sign you in")).to_be_visible()
        expect(alice.page.get_by_text("database")).to_have_count(0)
        alice.page.get_by_role("button", name="Allow").click()
        expect(alice.page.get_by_role("heading", level=1)).to_have_text("Welcome to the quiz")
        tokens = requests.post(
            f"{stack.issuer_url}/token",
            data={
                "grant_type": "authorization_code",
                "code": quiz.received[-1]["code"],
                "redirect_uri": quiz.callback,
                "code_verifier": verifier,
                "client_id": client.client_id,
            },
            timeout=10,
        ).json()
    finally:
        quiz.server.stop()
    for stolen in (tokens["access_token"], tokens["id_token"]):
        grant = {"endpoint": stack.sql_url, "connection_string": CONNECTION_STRING}
        refused = run_sql({**grant, "access_token": stolen}, "select task from todos")
        assert refused.status_code == 400
        assert refused.json()["message"] == "invalid JWT token audience"
    # The todo app's own token, as its SQL page gets it, still reads her rows.
    alice.page.goto(alice.home)
    own = run_sql(alice.access_token(), "select task from todos")
    assert own.status_code == 200
    assert [row["task"] for row in own.json()["rows"]] == ["alice: only mine"]
