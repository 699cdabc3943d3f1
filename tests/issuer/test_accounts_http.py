"""Accounts over real HTTP: two app instances ("workers") on loopback ports, one database."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import BaseWSGIServer, make_server

from issuer import create_app, db
from issuer.accounts import users
from issuer.config import Config

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


def test_sign_up_log_out_log_in_across_workers(workers: tuple[str, str]) -> None:
    a, b = workers
    browser = requests.Session()
    response = post_form(
        browser, f"{a}/signup", email="ada@example.com", password=PASSWORD, confirm=PASSWORD
    )
    assert response.status_code == 303
    set_cookies = response.raw.headers.getlist("Set-Cookie")
    assert sorted(c.split("=", 1)[0] for c in set_cookies) == ["issuer_device", "issuer_session"]
    assert all("HttpOnly" in c and "SameSite=Lax" in c for c in set_cookies)

    # The other worker accepts the same session: same secret key, same database.
    account = browser.get(f"{b}/account", allow_redirects=False, timeout=TIMEOUT)
    assert account.status_code == 200
    assert "ada@example.com" in account.text

    assert post_form(browser, f"{b}/logout", page=f"{b}/account").status_code == 303
    assert browser.get(f"{a}/account", allow_redirects=False, timeout=TIMEOUT).status_code == 302

    target = "/authorize?response_type=code&client_id=todo&state=s%20t"
    response = post_form(
        browser,
        f"{a}/login?next={requests.utils.quote(target, safe='')}",
        email="ada@example.com",
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
    engine = db.engine_for(backend_config.database_url)
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
