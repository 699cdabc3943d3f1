"""The todo app on Neon's Data API (`APP_DATABASE_API=data_api`): the same pages,
the same errors and the same isolation as over SQL, through postgrest-py and the
local Data API. What reached the database is checked as the superuser."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import pytest
import requests

from proxy.config import ProxyConfig
from proxy.rules import AuthRule
from stack.migrate import LocalDatabase
from tests.app.live import HTTP_TIMEOUT, Stack, assert_no_crash, closed_port_url, csrf, log_in
from tests.app.test_http_errors import EXPIRED, JSON, rows_of
from tests.proxy.support import Proxy, base_config


class Visitor:
    """A browser logged in to the stack, using the Data API variant of the app at `url`."""

    def __init__(self, stack: Stack, email: str, url: str) -> None:
        self.sub = stack.users[email]
        self.url = url
        self.browser = log_in(stack, email)
        self.token = csrf(self.browser, stack)

    def get(self, path: str, **kw: object) -> requests.Response:
        response = self.browser.get(f"{self.url}{path}", timeout=HTTP_TIMEOUT, **kw)
        assert_no_crash(response)
        return response

    def post(self, path: str, **form: str) -> requests.Response:
        response = self.browser.post(
            f"{self.url}{path}", data={"csrf_token": self.token, **form}, timeout=HTTP_TIMEOUT
        )
        assert_no_crash(response)
        return response


@pytest.fixture
def data_api_app(app_variant: Callable[..., str]) -> str:
    return app_variant(database_api="data_api")


@pytest.fixture
def visitor(
    stack: Stack, make_user: Callable[[str], str], data_api_app: str
) -> Callable[[], Visitor]:
    def make() -> Visitor:
        return Visitor(stack, make_user(f"rest-{secrets.token_hex(4)}@example.com"), data_api_app)

    return make


def test_the_pages_read_and_write_through_the_data_api(
    visitor: Callable[[], Visitor], neon_db: LocalDatabase
) -> None:
    alice = visitor()
    for task in ("first", "second"):
        assert alice.post("/todos", task=task).status_code == 200
    (first, _, _), (second, _, _) = rows_of(neon_db, alice.sub)
    page = alice.get("/")
    assert page.text.index("second") < page.text.index("first")  # newest first

    assert alice.post(f"/todos/{first}/toggle").status_code == 200  # flip
    assert alice.post(f"/todos/{second}/toggle", done="true").status_code == 200
    assert alice.post(f"/todos/{second}/toggle", done="false").status_code == 200
    assert alice.get(f"/todos/{first}/edit").status_code == 200
    assert alice.post(f"/todos/{first}/edit", task="first, renamed").status_code == 200
    assert rows_of(neon_db, alice.sub) == [
        (first, "first, renamed", True),
        (second, "second", False),
    ]
    assert alice.post(f"/todos/{second}/delete").status_code == 200
    assert rows_of(neon_db, alice.sub) == [(first, "first, renamed", True)]


def test_the_database_page_shows_the_role_and_claims_the_data_api_ran_with(
    visitor: Callable[[], Visitor],
) -> None:
    alice = visitor()
    alice.post("/todos", task="one")
    page = alice.get("/session")
    assert page.status_code == 200
    assert "/rpc/whoami" in page.text
    assert re.search(r'data-testid="db-role"><code>authenticated<', page.text)
    assert re.search(rf'data-testid="db-user-id"><code>{alice.sub}<', page.text)
    assert re.search(r'data-testid="db-visible"><code>1<', page.text)


def test_another_users_todos_are_not_found_and_stay_unchanged(
    visitor: Callable[[], Visitor], neon_db: LocalDatabase
) -> None:
    alice, mallory = visitor(), visitor()
    alice.post("/todos", task="alice's")
    [(todo, _, _)] = rows_of(neon_db, alice.sub)
    assert "alice&#39;s" not in mallory.get("/").text
    for path, form in (
        (f"/todos/{todo}/toggle", {}),
        (f"/todos/{todo}/toggle", {"done": "true"}),
        (f"/todos/{todo}/edit", {"task": "mine now"}),
        (f"/todos/{todo}/delete", {}),
    ):
        assert mallory.post(path, **form).status_code == 404, path
    assert mallory.get(f"/todos/{todo}/edit").status_code == 404
    assert rows_of(neon_db, alice.sub) == [(todo, "alice's", False)]


@pytest.mark.parametrize(
    ("task", "status"),
    [("", 400), ("x" * 501, 400), ("nul\x00byte", 400)],
)
def test_bad_input_is_the_same_4xx_as_over_sql(
    visitor: Callable[[], Visitor], neon_db: LocalDatabase, task: str, status: int
) -> None:
    alice = visitor()
    assert alice.post("/todos", task=task).status_code == status
    assert alice.post("/todos/99999999999999999999/toggle").status_code == 404
    assert alice.post("/todos/1/toggle", done="maybe").status_code == 400
    assert rows_of(neon_db, alice.sub) == []


def test_an_unreachable_data_api_is_a_503_naming_it(
    stack: Stack, make_user: Callable[[str], str], app_variant: Callable[..., str], neon_db
) -> None:
    down_url = f"{closed_port_url()}/neondb/rest/v1"
    down = Visitor(
        stack,
        make_user(f"rest-{secrets.token_hex(4)}@example.com"),
        app_variant(database_api="data_api", data_api_url=down_url),
    )
    page = down.get("/")
    assert page.status_code == 503
    assert "The database is unreachable" in page.text and down_url in page.text
    assert down.post("/todos", task="lost?").status_code == 503
    assert rows_of(neon_db, down.sub) == []
    as_json = down.get("/", headers=JSON)
    assert (as_json.status_code, as_json.json()["error"]) == (503, "database_unreachable")


def test_a_token_the_data_api_refuses_means_signing_in_again(
    stack: Stack,
    make_user: Callable[[str], str],
    app_variant: Callable[..., str],
    neon_db: LocalDatabase,
    start_proxy: Callable[[ProxyConfig], Proxy],
) -> None:
    """A Data API that requires another audience refuses the app's token (401): as
    over SQL, the login ends and the user is asked to sign in again, nothing written."""
    jwks = f"{stack.issuer_url}/.well-known/jwks.json"
    rule = AuthRule("issuer", jwks, "urn:another:database", ("authenticated", "authenticator"))
    strict = start_proxy(base_config(neon_db, jwks, auth_rules=[rule]))
    elsewhere = app_variant(database_api="data_api", data_api_url=f"{strict.url}/neondb/rest/v1")
    user = Visitor(stack, make_user(f"rest-{secrets.token_hex(4)}@example.com"), elsewhere)
    page = user.get("/")
    assert page.status_code == 200 and EXPIRED in page.text
    assert "Signed in as" not in user.get("/").text
    assert rows_of(neon_db, user.sub) == []
