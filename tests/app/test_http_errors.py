"""Every friendly error, reached over HTTP against the live stack.

Each bad request gets a precise 4xx (or a 503 naming the part that is down),
as a page or, for scripts, as JSON, never a 500 or a stack trace; and a
refused write leaves the database as it was, which is checked as the
superuser (who bypasses RLS), not through the app that refused it.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
import requests

from stack.migrate import OWNER, SQL_DIR, LocalDatabase
from tests.app.live import (
    HTTP_TIMEOUT,
    LiveServer,
    Stack,
    assert_no_crash,
    closed_port_url,
    csrf,
    forget_logins,
    log_in,
    login_row,
)
from tests.proxy.support import base_config

EXPIRED = "Your session has expired. Please sign in again."
JSON = {"Accept": "application/json"}

Row = tuple[int, str, bool]


def rows_of(neon_db: LocalDatabase, sub: str) -> list[Row]:
    """`sub`'s todos as the superuser sees them (RLS does not apply to it)."""
    with psycopg.connect(neon_db.superuser_url, connect_timeout=10) as conn:
        return conn.execute(
            "SELECT id, task, is_complete FROM todos WHERE user_id = %s ORDER BY id", [sub]
        ).fetchall()


def post(browser: requests.Session, url: str, token: str, **form: str) -> requests.Response:
    response = browser.post(url, data={"csrf_token": token, **form}, timeout=HTTP_TIMEOUT)
    assert_no_crash(response)
    return response


class User:
    """A logged-in browser, its CSRF token and its issuer subject."""

    def __init__(self, stack: Stack, email: str, neon_db: LocalDatabase) -> None:
        self.stack = stack
        self.neon_db = neon_db
        self.sub = stack.users[email]
        self.browser = log_in(stack, email)
        self.token = csrf(self.browser, stack)

    def post(self, path: str, **form: str) -> requests.Response:
        return post(self.browser, f"{self.stack.app_url}{path}", self.token, **form)

    def add(self, task: str) -> int:
        """Add a todo through the app; return its id."""
        assert self.post("/todos", task=task).status_code == 200
        return max(todo for todo, text, _ in rows_of(self.neon_db, self.sub) if text == task)


@pytest.fixture
def alice(stack: Stack, make_user: Callable[[str], str], neon_db: LocalDatabase) -> User:
    return User(stack, make_user("errors-alice@example.com"), neon_db)


@pytest.fixture
def bob(stack: Stack, make_user: Callable[[str], str], neon_db: LocalDatabase) -> User:
    return User(stack, make_user("errors-bob@example.com"), neon_db)


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize("task", ["", "   ", "\t\r\n", None])
def test_an_empty_task_is_a_400_and_writes_nothing(alice, neon_db, task) -> None:
    before = rows_of(neon_db, alice.sub)
    response = alice.post("/todos", **({} if task is None else {"task": task}))
    assert response.status_code == 400
    assert "A todo needs some text." in response.text
    assert rows_of(neon_db, alice.sub) == before


def test_a_task_of_501_characters_is_a_400_and_500_are_saved(alice, neon_db) -> None:
    before = rows_of(neon_db, alice.sub)
    response = alice.post("/todos", task="x" * 501)
    assert response.status_code == 400
    assert "at most 500 characters" in response.text
    assert rows_of(neon_db, alice.sub) == before
    assert alice.post("/todos", task="y" * 500).status_code == 200
    assert [task for _, task, _ in rows_of(neon_db, alice.sub)].count("y" * 500) == 1


def test_a_huge_task_is_a_400_and_writes_nothing(alice, neon_db) -> None:
    before = rows_of(neon_db, alice.sub)
    response = alice.post("/todos", task="x" * 1_000_000)
    assert response.status_code == 400
    assert rows_of(neon_db, alice.sub) == before


@pytest.mark.parametrize("task", ["before\x00after", "\x00"])
def test_a_nul_byte_is_a_400_and_keeps_the_session(alice, neon_db, task) -> None:
    """Postgres text cannot hold NUL: a bad input, not a reason to sign in again."""
    before = rows_of(neon_db, alice.sub)
    response = alice.post("/todos", task=task)
    assert response.status_code == 400
    assert EXPIRED not in response.text
    assert rows_of(neon_db, alice.sub) == before
    page = alice.browser.get(f"{alice.stack.app_url}/", timeout=HTTP_TIMEOUT)
    assert "Signed in as" in page.text


def test_renaming_to_nothing_is_a_400_and_keeps_the_text(alice, neon_db) -> None:
    todo = alice.add("keep this text")
    for task, reason in (
        ("", "needs some text"),
        ("  ", "needs some text"),
        ("z" * 501, "at most"),
    ):
        response = alice.post(f"/todos/{todo}/edit", task=task)
        assert response.status_code == 400, task
        assert reason in response.text
    assert (todo, "keep this text", False) in rows_of(neon_db, alice.sub)


@pytest.mark.parametrize("done", ["yes", "1", "TRUE", "", "true "])
def test_a_bad_done_value_is_a_400_and_changes_nothing(alice, neon_db, done) -> None:
    todo = alice.add("toggle me")
    response = alice.post(f"/todos/{todo}/toggle", done=done)
    assert response.status_code == 400
    assert "must be true or false" in response.text
    assert (todo, "toggle me", False) in rows_of(neon_db, alice.sub)


def test_done_true_and_false_set_the_state(alice, neon_db) -> None:
    todo = alice.add("set me")
    assert alice.post(f"/todos/{todo}/toggle", done="true").status_code == 200
    assert (todo, "set me", True) in rows_of(neon_db, alice.sub)
    assert alice.post(f"/todos/{todo}/toggle", done="false").status_code == 200
    assert (todo, "set me", False) in rows_of(neon_db, alice.sub)


# -- todos that are not yours, or not there -----------------------------------

ABSENT_IDS = ["99999999999999999999", "9223372036854775807", "9223372036854775808", "0"]
NOT_IDS = ["-1", "abc", "1.5", "1e3", "%20", "0x10"]


def _attempts(todo: str) -> list[tuple[str, str, dict[str, str]]]:
    return [
        ("POST", f"/todos/{todo}/toggle", {}),
        ("POST", f"/todos/{todo}/toggle", {"done": "true"}),
        ("GET", f"/todos/{todo}/edit", {}),
        ("POST", f"/todos/{todo}/edit", {"task": "stolen"}),
        ("POST", f"/todos/{todo}/edit", {"task": ""}),
        ("POST", f"/todos/{todo}/delete", {}),
    ]


def _send(user: User, method: str, path: str, form: dict[str, str]) -> requests.Response:
    if method == "GET":
        response = user.browser.get(f"{user.stack.app_url}{path}", timeout=HTTP_TIMEOUT)
        assert_no_crash(response)
        return response
    return user.post(path, **form)


def test_another_users_todo_is_not_found_and_untouched(alice, bob, neon_db) -> None:
    theirs = bob.add("bob's secret")
    before = rows_of(neon_db, bob.sub)
    for method, path, form in _attempts(str(theirs)):
        response = _send(alice, method, path, form)
        assert response.status_code == 404, (method, path, form, response.status_code)
        assert "does not exist, or it is not yours" in response.text
        assert "s secret" not in response.text  # bob's text, raw or escaped
    assert rows_of(neon_db, bob.sub) == before
    json_404 = alice.browser.post(
        f"{alice.stack.app_url}/todos/{theirs}/delete",
        data={"csrf_token": alice.token},
        headers=JSON,
        timeout=HTTP_TIMEOUT,
    )
    assert json_404.status_code == 404
    assert json_404.json()["error"] == "not_found"


@pytest.mark.parametrize("todo", ABSENT_IDS + NOT_IDS)
def test_ids_that_name_no_todo_are_404(alice, neon_db, todo) -> None:
    before = rows_of(neon_db, alice.sub)
    for method, path, form in _attempts(todo):
        response = _send(alice, method, path, form)
        assert response.status_code == 404, (method, path, form, response.status_code)
    assert rows_of(neon_db, alice.sub) == before


# -- CSRF -----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "not-a-token", "bob"])
def test_a_missing_or_wrong_csrf_token_is_a_400_and_writes_nothing(alice, bob, neon_db, token):
    sent = {"task": "forged"}
    if token is not None:
        sent["csrf_token"] = bob.token if token == "bob" else token
    before = rows_of(neon_db, alice.sub)
    response = alice.browser.post(f"{alice.stack.app_url}/todos", data=sent, timeout=HTTP_TIMEOUT)
    assert_no_crash(response)
    assert response.status_code == 400
    assert "This form has expired" in response.text
    assert rows_of(neon_db, alice.sub) == before
    as_json = alice.browser.post(
        f"{alice.stack.app_url}/todos", data=sent, headers=JSON, timeout=HTTP_TIMEOUT
    )
    assert (as_json.status_code, as_json.json()["error"]) == (400, "csrf_failed")


# -- the session ends under the user ------------------------------------------


def test_a_login_ended_on_the_server_means_signing_in_again(alice, neon_db) -> None:
    alice.add("still mine")
    before = rows_of(neon_db, alice.sub)
    forget_logins(alice.stack.app, alice.sub)
    response = alice.post("/todos", task="after the end")
    assert response.status_code == 200
    assert response.url == f"{alice.stack.app_url}/"
    assert EXPIRED in response.text
    assert "Log in" in response.text
    assert rows_of(neon_db, alice.sub) == before


def test_the_list_page_says_the_session_expired_when_its_login_is_gone(alice) -> None:
    forget_logins(alice.stack.app, alice.sub)
    response = alice.browser.get(f"{alice.stack.app_url}/", timeout=HTTP_TIMEOUT)
    assert_no_crash(response)
    assert response.status_code == 200
    assert "Log in" in response.text
    assert EXPIRED in response.text


def test_a_revoked_refresh_token_means_signing_in_again(alice, app_variant) -> None:
    """The issuer refuses the refresh (the family was revoked): the login is
    dropped and the user is asked to sign in, with nothing else lost."""
    stack = alice.stack
    refresh_token = login_row(stack.app, alice.browser).refresh_token
    revoked = requests.post(
        f"{stack.issuer_url}/revoke",
        data={"token": refresh_token, "token_type_hint": "refresh_token"},
        auth=(stack.client_id, stack.client_secret),
        timeout=HTTP_TIMEOUT,
    )
    assert revoked.status_code == 200
    # The same app, refreshing every token it uses: the access token is "stale".
    stale = app_variant(refresh_margin=10**9)
    response = alice.browser.get(f"{stale}/", timeout=HTTP_TIMEOUT)
    assert_no_crash(response)
    assert response.status_code == 200
    assert response.url == f"{stale}/"
    assert EXPIRED in response.text
    # The login is gone for good, on the real app too.
    back = alice.browser.get(f"{stack.app_url}/", timeout=HTTP_TIMEOUT)
    assert "Log in" in back.text
    assert "Signed in as" not in back.text


def test_the_sql_token_endpoint_answers_scripts_in_json(alice) -> None:
    url = f"{alice.stack.app_url}/sql/token"
    headers = {**JSON, "X-CSRFToken": alice.token}
    issued = alice.browser.post(url, headers=headers, timeout=HTTP_TIMEOUT)
    assert issued.status_code == 200
    assert issued.json()["access_token"].count(".") == 2
    forget_logins(alice.stack.app, alice.sub)
    refused = alice.browser.post(url, headers=headers, timeout=HTTP_TIMEOUT)
    assert refused.status_code == 401
    assert refused.json() == {"error": "session_expired", "message": EXPIRED, "login": "/login"}
    anonymous = requests.post(url, headers=JSON, timeout=HTTP_TIMEOUT)
    assert anonymous.status_code == 400
    assert anonymous.json()["error"] == "csrf_failed"
    assert "access_token" not in anonymous.text


# -- a part of the stack is down ----------------------------------------------


def test_an_unreachable_sql_endpoint_is_a_503_naming_the_database(alice, neon_db, app_variant):
    down = app_variant(sql_endpoint=f"{closed_port_url()}/sql")
    page = alice.browser.get(f"{down}/", timeout=HTTP_TIMEOUT)
    assert_no_crash(page)
    assert page.status_code == 503
    assert "The database is unreachable" in page.text
    before = rows_of(neon_db, alice.sub)
    added = post(alice.browser, f"{down}/todos", alice.token, task="lost?")
    assert added.status_code == 503
    assert rows_of(neon_db, alice.sub) == before
    as_json = alice.browser.get(f"{down}/", headers=JSON, timeout=HTTP_TIMEOUT)
    assert (as_json.status_code, as_json.json()["error"]) == (503, "database_unreachable")
    # Nothing was lost: the real app still serves the same login.
    assert "Signed in as" in alice.browser.get(f"{alice.stack.app_url}/", timeout=HTTP_TIMEOUT).text


def test_a_proxy_without_its_database_is_a_503_naming_the_database(
    alice, neon_db, start_proxy, app_variant
) -> None:
    """The real proxy, pointed at a Postgres port nothing listens on, answers 503."""
    jwks = f"{alice.stack.issuer_url}/.well-known/jwks.json"
    port = int(closed_port_url().rsplit(":", 1)[1])
    proxy = start_proxy(base_config(neon_db, jwks, database_host="127.0.0.1", database_port=port))
    broken = app_variant(sql_endpoint=f"{proxy.url}/sql")
    page = alice.browser.get(f"{broken}/", timeout=HTTP_TIMEOUT)
    assert_no_crash(page)
    assert page.status_code == 503
    assert "The database is unreachable" in page.text


def test_an_unreachable_issuer_is_a_503_naming_the_login_service(stack, app_variant) -> None:
    down = app_variant(issuer_url=closed_port_url())
    for path in ("/login", "/signup"):
        page = requests.get(f"{down}{path}", timeout=HTTP_TIMEOUT)
        assert_no_crash(page)
        assert page.status_code == 503, path
        assert "The login service is unreachable" in page.text
    as_json = requests.get(f"{down}/login", headers=JSON, timeout=HTTP_TIMEOUT)
    assert (as_json.status_code, as_json.json()["error"]) == (503, "issuer_unreachable")


def test_an_issuer_answering_503_is_a_503_naming_the_login_service(stack, app_variant) -> None:
    unavailable = LiveServer()  # answers 503 to everything until it gets an app
    try:
        down = app_variant(issuer_url=unavailable.url)
        page = requests.get(f"{down}/login", timeout=HTTP_TIMEOUT)
        assert_no_crash(page)
        assert page.status_code == 503
        assert "The login service is unreachable" in page.text
    finally:
        unavailable.stop()


@pytest.fixture(scope="module")
def half_migrated(neon_db: LocalDatabase) -> str:
    """A database with the `auth` schema and the roles' grants but no `todos`
    (`sql/schema/20_todos.sql` never applied); returns its owner's URL."""
    name = "half_migrated"
    with psycopg.connect(neon_db.superuser_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} OWNER {OWNER}")
    owner_url = neon_db.server.url(OWNER, name)
    with psycopg.connect(owner_url, autocommit=True, connect_timeout=10) as conn:
        for part in ("local/20_auth.sql", "schema/10_privileges.sql"):
            conn.execute((SQL_DIR / part).read_bytes())
    return owner_url


def test_a_database_without_the_schema_is_a_503_that_says_so(
    alice, neon_db, start_proxy, app_variant, half_migrated
) -> None:
    jwks = f"{alice.stack.issuer_url}/.well-known/jwks.json"
    proxy = start_proxy(base_config(neon_db, jwks, admin_url=half_migrated))
    bare = app_variant(
        sql_endpoint=f"{proxy.url}/sql",
        database_authenticated_url="postgresql://authenticated@localhost/half_migrated",
    )
    page = alice.browser.get(f"{bare}/", timeout=HTTP_TIMEOUT)
    assert_no_crash(page)
    assert page.status_code == 503
    assert "The database is not set up" in page.text
    assert "make migrate" in page.text


def test_a_refresh_while_the_issuer_is_down_is_a_503_and_keeps_the_login(
    alice, app_variant
) -> None:
    down = app_variant(issuer_url=closed_port_url(), refresh_margin=10**9)
    page = alice.browser.get(f"{down}/", timeout=HTTP_TIMEOUT)
    assert_no_crash(page)
    assert page.status_code == 503
    assert "The login service is unreachable" in page.text
    token = alice.browser.post(
        f"{down}/sql/token",
        headers={**JSON, "X-CSRFToken": alice.token},
        timeout=HTTP_TIMEOUT,
    )
    assert (token.status_code, token.json()["error"]) == (503, "issuer_unreachable")
    # Once the issuer answers again, the same login carries on.
    assert "Signed in as" in alice.browser.get(f"{alice.stack.app_url}/", timeout=HTTP_TIMEOUT).text


# -- whatever else a client sends ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/todos", 405),
        ("PUT", "/", 405),
        ("GET", "/todos/1/delete", 405),
        ("DELETE", "/todos/1/delete", 405),
        ("GET", "/no/such/page", 404),
        ("GET", "/auth/callback", 400),
        ("GET", "/sql/token", 405),
    ],
)
def test_odd_requests_get_a_precise_status(alice, method, path, status) -> None:
    response = alice.browser.request(method, f"{alice.stack.app_url}{path}", timeout=HTTP_TIMEOUT)
    assert_no_crash(response)
    assert response.status_code == status
