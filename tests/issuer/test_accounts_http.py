"""Accounts over real HTTP: two app instances ("workers") on loopback ports, one database."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import BaseWSGIServer, make_server

import servicedb
from issuer import create_app
from issuer.accounts import users
from issuer.config import Config
from tests.support.mail import Inbox, link_in

PASSWORD = "correct horse battery"
TIMEOUT = 10


def serve(config: Config) -> tuple[str, BaseWSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", 0, create_app(config), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_port}", server, thread


@pytest.fixture
def workers(backend_config: Config) -> Iterator[tuple[str, str]]:
    """Two independent app instances sharing the database and the generated secret key."""
    config = dataclasses.replace(backend_config, secret_key=None)
    started = [serve(config), serve(config)]
    yield started[0][0], started[1][0]
    for _, server, thread in started:
        server.shutdown()
        thread.join(timeout=TIMEOUT)
        server.app.extensions["db"].dispose()


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def post_form(
    session: requests.Session, url: str, page: str | None = None, **fields: str
) -> requests.Response:
    """Post the form of `page` (default: `url` itself) with its CSRF token."""
    token = csrf_token(session.get(page or url, timeout=TIMEOUT).text)
    return session.post(
        url, data={"csrf_token": token, **fields}, allow_redirects=False, timeout=TIMEOUT
    )


def test_sign_up_log_out_log_in_across_workers(
    workers: tuple[str, str], inbox: Inbox, backend_config: Config
) -> None:
    a, b = workers
    browser = requests.Session()
    email = f"ada-{backend_config.database_url[:6]}@example.com"
    before = inbox.count(email)
    response = post_form(browser, f"{a}/signup", email=email, password=PASSWORD, confirm=PASSWORD)
    assert response.status_code == 200
    assert "Check your email" in response.text
    # The link names ISSUER_URL; the other worker serves it (same database).
    link = link_in(inbox.latest(email, before), "/verify-email")
    path = link.removeprefix(backend_config.issuer_url)
    page = browser.get(f"{b}{path}", timeout=TIMEOUT)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', page.text).group(1)
    response = post_form(browser, f"{b}/verify-email", page=f"{b}{path}", token=token)
    assert response.status_code == 303
    set_cookies = response.raw.headers.getlist("Set-Cookie")
    assert [c.split("=", 1)[0] for c in set_cookies] == ["issuer_session"]
    assert all("HttpOnly" in c and "SameSite=Lax" in c for c in set_cookies)

    # The other worker accepts the same session: same secret key, same database.
    account = browser.get(f"{a}/account", allow_redirects=False, timeout=TIMEOUT)
    assert account.status_code == 200
    assert email in account.text

    assert post_form(browser, f"{b}/logout", page=f"{b}/account").status_code == 303
    assert browser.get(f"{a}/account", allow_redirects=False, timeout=TIMEOUT).status_code == 302

    target = "/authorize?response_type=code&client_id=todo&state=s%20t"
    response = post_form(
        browser,
        f"{a}/login?next={requests.utils.quote(target, safe='')}",
        email=email,
        password=PASSWORD,
    )
    assert response.status_code == 303
    assert response.headers["Location"] == target


def test_post_without_csrf_token_is_refused(workers: tuple[str, str]) -> None:
    a, _ = workers
    response = requests.post(
        f"{a}/login",
        data={"email": "ada@example.com", "password": PASSWORD},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "Traceback" not in response.text


def test_throttle_is_shared_by_all_workers(
    workers: tuple[str, str], backend_config: Config
) -> None:
    engine = servicedb.engine_for(backend_config.database_url)
    users.create_user(engine, "ada@example.com", PASSWORD)
    engine.dispose()
    a, b = workers
    for i in range(5):
        worker = (a, b)[i % 2]
        response = post_form(
            requests.Session(), f"{worker}/login", email="ada@example.com", password="guess"
        )
        assert response.status_code == 401
    for worker in (a, b):
        response = post_form(
            requests.Session(), f"{worker}/login", email="ada@example.com", password=PASSWORD
        )
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) > 0


class FromAddress(requests.adapters.HTTPAdapter):
    """Connect from a chosen loopback address (127.0.0.x): another client on the network."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def browser_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def test_strangers_cannot_lock_the_owner_out_of_a_known_browser(
    workers: tuple[str, str], backend_config: Config
) -> None:
    """OWASP's device cookies: failures from elsewhere lock the account for unknown
    browsers only; the browser its owner logged in with before keeps working."""
    engine = servicedb.engine_for(backend_config.database_url)
    users.create_user(engine, "victim@example.com", PASSWORD)
    engine.dispose()
    a, b = workers
    owner = browser_at("127.0.0.2")
    assert (
        post_form(owner, f"{a}/login", email="victim@example.com", password=PASSWORD).status_code
        == 303
    )
    assert "issuer_device" in owner.cookies
    assert post_form(owner, f"{a}/logout", page=f"{a}/account").status_code == 303

    # Strangers on several addresses guess the password until the account locks.
    statuses = [
        post_form(
            browser_at(f"127.0.0.{3 + i % 3}"),
            f"{(a, b)[i % 2]}/login",
            email="victim@example.com",
            password=f"guess-{i}",
        ).status_code
        for i in range(8)
    ]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    # Even the right password, from an unknown browser, is throttled now.
    thief = browser_at("127.0.0.7")
    assert (
        post_form(thief, f"{b}/login", email="victim@example.com", password=PASSWORD).status_code
        == 429
    )

    # The owner's browser is not: it logs in, on either worker.
    for worker in (b, a):
        response = post_form(
            owner, f"{worker}/login", email="victim@example.com", password=PASSWORD
        )
        assert response.status_code == 303, response.text
        assert post_form(owner, f"{worker}/logout", page=f"{worker}/account").status_code == 303
    # ... and the strangers stay locked out.
    assert (
        post_form(thief, f"{a}/login", email="victim@example.com", password=PASSWORD).status_code
        == 429
    )


def test_a_known_browser_has_its_own_failure_budget(
    workers: tuple[str, str], backend_config: Config
) -> None:
    engine = servicedb.engine_for(backend_config.database_url)
    users.create_user(engine, "victim@example.com", PASSWORD)
    users.create_user(engine, "other@example.com", PASSWORD)
    engine.dispose()
    a, _ = workers
    owner = browser_at("127.0.0.2")
    assert (
        post_form(owner, f"{a}/login", email="victim@example.com", password=PASSWORD).status_code
        == 303
    )

    # A copied device cookie is no skeleton key: it is for that one account only.
    for i in range(5):
        post_form(
            browser_at(f"127.0.0.{4 + i}"),
            f"{a}/login",
            email="other@example.com",
            password="guess",
        )
    copied = browser_at("127.0.0.3")
    copied.cookies.set("issuer_device", owner.cookies["issuer_device"])
    response = post_form(copied, f"{a}/login", email="other@example.com", password=PASSWORD)
    assert response.status_code == 429

    statuses = [
        post_form(owner, f"{a}/login", email="victim@example.com", password="wrong").status_code
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
