"""Sessions that outlive their access tokens, on a stack whose tokens last 5 s.

The app refreshes a token with less than 3 s left (`quick_stack`): a page
after that point goes through the issuer's refresh grant first. Refresh
tokens rotate and a reused one revokes its family, so the tests also fire
one session's requests in parallel at a stale token, and rotate the issuer's
signing key in the middle of a session.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.app.live import (
    HTTP_TIMEOUT,
    QUICK_REFRESH_MARGIN,
    Stack,
    assert_no_crash,
    create_user,
    csrf,
    log_in,
    log_out,
    login_row,
)

PARALLEL = 8


def jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def list_page(stack: Stack, browser: requests.Session, todo: str) -> requests.Response:
    page = browser.get(f"{stack.app_url}/", timeout=HTTP_TIMEOUT)
    assert_no_crash(page)
    assert page.status_code == 200
    assert "Signed in as" in page.text
    assert todo in page.text
    return page


@pytest.fixture
def logged_in(quick_stack: Stack, request: pytest.FixtureRequest) -> requests.Session:
    """A user of the quick stack, logged in, with one todo named after the test."""
    email = create_user(quick_stack, f"{request.node.name.replace('_', '-')}@example.com")
    browser = log_in(quick_stack, email)
    added = browser.post(
        f"{quick_stack.app_url}/todos",
        data={"task": request.node.name, "csrf_token": csrf(browser, quick_stack)},
        timeout=HTTP_TIMEOUT,
    )
    assert added.status_code == 200
    return browser


def test_the_session_survives_expiry_through_refresh(quick_stack, logged_in, request) -> None:
    first = login_row(quick_stack.app, logged_in)
    expiry = jwt_part(first.access_token, 1)["exp"]
    sleep_until(expiry + 0.5)  # the access token has expired
    list_page(quick_stack, logged_in, request.node.name)
    second = login_row(quick_stack.app, logged_in)
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token  # rotated at the issuer
    assert jwt_part(second.access_token, 1)["exp"] > expiry
    assert jwt_part(second.access_token, 1)["sub"] == jwt_part(first.access_token, 1)["sub"]
    # And again: the rotated refresh token is the live one.
    sleep_until(second.access_expires_at - QUICK_REFRESH_MARGIN + 0.2)
    list_page(quick_stack, logged_in, request.node.name)
    assert login_row(quick_stack.app, logged_in).refresh_token != second.refresh_token


def test_parallel_requests_at_a_stale_token_refresh_it_once(
    quick_stack, logged_in, request
) -> None:
    """Eight requests of one session find the token stale at once: one refreshes,
    the others wait for it, and no refresh token is presented twice (which
    would revoke the family and log the user out)."""
    todo = request.node.name
    first = login_row(quick_stack.app, logged_in)
    sleep_until(first.access_expires_at - QUICK_REFRESH_MARGIN + 0.2)
    cookie = {"app_session": logged_in.cookies["app_session"]}
    start = threading.Barrier(PARALLEL)

    def fetch(_: int) -> tuple[int, bool]:
        start.wait(timeout=HTTP_TIMEOUT)
        page = requests.get(f"{quick_stack.app_url}/", cookies=cookie, timeout=HTTP_TIMEOUT)
        assert_no_crash(page)
        return page.status_code, todo in page.text and "Signed in as" in page.text

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(fetch, range(PARALLEL)))
    assert results == [(200, True)] * PARALLEL
    second = login_row(quick_stack.app, logged_in)
    assert second.access_token != first.access_token
    # The family is alive: the next refresh works too.
    sleep_until(second.access_expires_at - QUICK_REFRESH_MARGIN + 0.2)
    list_page(quick_stack, logged_in, todo)
    assert login_row(quick_stack.app, logged_in).access_token != second.access_token


def test_a_key_rotation_during_a_session_logs_no_one_out(quick_stack, logged_in, request) -> None:
    todo = request.node.name
    before = login_row(quick_stack.app, logged_in)
    old_kid = jwt_part(before.access_token, 0)["kid"]
    retired, ring = quick_stack.issuer.extensions["keyring"].rotate(min_published=0, force=True)
    assert retired.kid == old_kid != ring.active.kid
    # Tokens signed by the retired key still work: it stays published.
    list_page(quick_stack, logged_in, todo)
    sleep_until(before.access_expires_at + 0.5)
    list_page(quick_stack, logged_in, todo)
    after = login_row(quick_stack.app, logged_in)
    assert jwt_part(after.access_token, 0)["kid"] == ring.active.kid
    session = logged_in.get(f"{quick_stack.app_url}/session", timeout=HTTP_TIMEOUT)
    assert session.status_code == 200
    assert after.access_token.split(".")[1] not in session.text
    # Logging out still ends the issuer's session: its ID token (signed by the
    # retired key, and expired by now) is still a valid hint.
    out = log_out(quick_stack, logged_in)
    assert_no_crash(out)
    assert out.url.split("?")[0] == f"{quick_stack.app_url}/"
    again = logged_in.get(f"{quick_stack.app_url}/login", timeout=HTTP_TIMEOUT)
    assert again.url.startswith(f"{quick_stack.issuer_url}/login"), again.url
