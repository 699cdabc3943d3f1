"""The login as an attacker sees it, over HTTP against the live stack.

Tokens stay on the server (the cookie is a signed, opaque login id); the
authorization response cannot be forged, replayed or injected into another
browser's login; logging out ends the app's session, the refresh-token family
and the issuer's session; every page carries the security headers.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from sqlalchemy import select, update

from app.store import oauth_states
from issuer.db import secret_digest
from tests.app.live import (
    HTTP_TIMEOUT,
    Stack,
    assert_no_crash,
    csrf,
    log_in,
    log_out,
    login_row,
    session_cookie,
    submit_login_form,
)

SESSION_KEYS = {"login", "_permanent", "csrf_token", "_flashes"}
TIMING = re.compile(r"^app;dur=(\d+\.\d\d), db;dur=(\d+\.\d\d)$")


def until_callback(stack: Stack, browser: requests.Session, email: str) -> str:
    """Sign in at the issuer, stopping before the app's callback; return its URL."""
    response = submit_login_form(stack, browser, email, allow_redirects=False)
    while response.is_redirect:
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(f"{stack.app_url}/auth/callback"):
            return location
        response = browser.get(location, allow_redirects=False, timeout=HTTP_TIMEOUT)
    raise AssertionError(f"the issuer did not send the browser back: {response.status_code}")


def new_state(stack: Stack, browser: requests.Session) -> str:
    """Start a login in `browser` (without visiting the issuer); return its `state`."""
    started = browser.get(f"{stack.app_url}/login", allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert started.status_code == 302
    return parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]


def callback(stack: Stack, browser: requests.Session, **params: str) -> requests.Response:
    response = browser.get(
        f"{stack.app_url}/auth/callback?{urlencode(params)}", timeout=HTTP_TIMEOUT
    )
    assert_no_crash(response)
    return response


def signed_in(stack: Stack, browser: requests.Session) -> bool:
    page = browser.get(f"{stack.app_url}/", timeout=HTTP_TIMEOUT)
    assert_no_crash(page)
    return "Signed in as" in page.text


@pytest.fixture
def alice(make_user: Callable[[str], str]) -> str:
    return make_user("login-alice@example.com")


# -- tokens stay on the server ------------------------------------------------


def test_no_token_reaches_the_browser(stack, alice) -> None:
    browser = requests.Session()
    set_cookies: list[str] = []
    bodies: list[str] = []

    def record(response: requests.Response, *_args: object, **_kwargs: object) -> None:
        set_cookies.extend(response.raw.headers.getlist("Set-Cookie"))
        bodies.append(response.text)

    browser.hooks["response"].append(record)
    done = browser.get(until_callback(stack, browser, alice), timeout=HTTP_TIMEOUT)
    assert done.url == f"{stack.app_url}/"
    for path in ("/", "/session", "/sql", "/todos/1/edit"):
        browser.get(f"{stack.app_url}{path}", timeout=HTTP_TIMEOUT)
    browser.hooks["response"].remove(record)
    token = browser.post(
        f"{stack.app_url}/sql/token",
        headers={"X-CSRFToken": csrf(browser, stack)},
        timeout=HTTP_TIMEOUT,
    ).json()

    row = login_row(stack.app, browser)
    secrets = {"access": row.access_token, "refresh": row.refresh_token, "id": row.id_token}
    assert all(secrets.values())
    # Any one part of a JWT (its signature above all) is as telling as the whole.
    pieces = {
        (name, piece)
        for name, value in secrets.items()
        for piece in value.split(".")
        if len(piece) > 16
    }
    for name, piece in pieces:
        assert not [c for c in set_cookies if piece in c], f"{name} token in a cookie"
        assert not [b for b in bodies if piece in b], f"{name} token in a page"
    # The browser pages are handed the access token by design, and nothing more.
    assert token["access_token"] == row.access_token
    assert set(token) == {
        "access_token", "expires_at", "endpoint", "connection_string", "data_api_url",
    }  # fmt: skip


def test_the_session_cookie_is_httponly_lax_and_holds_only_the_login_id(stack, alice) -> None:
    browser = requests.Session()
    answer = browser.get(
        until_callback(stack, browser, alice), allow_redirects=False, timeout=HTTP_TIMEOUT
    )
    assert answer.status_code == 303
    [cookie] = [c for c in answer.raw.headers.getlist("Set-Cookie") if c.startswith("app_session=")]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "SameSite=Lax" in cookie
    assert "secure" not in attributes  # plain http on loopback; https sets it
    browser.get(f"{stack.app_url}/", timeout=HTTP_TIMEOUT)
    content = session_cookie(browser)
    assert set(content) <= SESSION_KEYS
    row = login_row(stack.app, browser)
    # The cookie's login id is a random token whose digest keys the row.
    assert secret_digest(content["login"]) == row.id
    assert content["login"] != row.id


def test_a_tampered_or_forged_cookie_logs_no_one_in(stack, alice) -> None:
    browser = log_in(stack, alice)
    value = browser.cookies["app_session"]
    tampered = requests.Session()
    tampered.cookies.set("app_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert not signed_in(stack, tampered)
    # A leaked app database holds digests only: signed as a cookie (even with the
    # app's own key), the digest names no login.
    row = login_row(stack.app, browser)
    forged = requests.Session()
    serializer = stack.app.session_interface.get_signing_serializer(stack.app)
    forged.cookies.set("app_session", serializer.dumps({"login": row.id, "_permanent": True}))
    assert not signed_in(stack, forged)
    assert signed_in(stack, browser)


# -- the authorization response -----------------------------------------------


def test_a_wrong_or_missing_state_fails_cleanly(stack, alice) -> None:
    browser = requests.Session()
    query = parse_qs(urlsplit(until_callback(stack, browser, alice)).query)
    code, state = query["code"][0], query["state"][0]
    for params in ({"code": code, "state": state[::-1]}, {"code": code}, {"state": state}, {}):
        failed = callback(stack, browser, **params)
        assert failed.status_code == 400, params
        assert "Sign-in could not be completed" in failed.text
        assert not signed_in(stack, browser)


def test_a_replayed_callback_fails_cleanly(stack, alice) -> None:
    browser = requests.Session()
    url = until_callback(stack, browser, alice)
    assert browser.get(url, timeout=HTTP_TIMEOUT).status_code == 200
    assert signed_in(stack, browser)
    replayed = browser.get(url, timeout=HTTP_TIMEOUT)
    assert_no_crash(replayed)
    assert replayed.status_code == 400
    assert "Sign-in could not be completed" in replayed.text


def test_a_spent_code_fails_even_with_a_fresh_state(stack, alice) -> None:
    browser = requests.Session()
    url = until_callback(stack, browser, alice)
    code = parse_qs(urlsplit(url).query)["code"][0]
    assert browser.get(url, timeout=HTTP_TIMEOUT).status_code == 200
    attacker = requests.Session()
    failed = callback(stack, attacker, code=code, state=new_state(stack, attacker))
    assert failed.status_code == 400
    assert "Sign-in could not be completed" in failed.text
    assert not signed_in(stack, attacker)


def test_a_code_injected_into_another_browsers_login_is_refused(stack, alice) -> None:
    """A stolen authorization response, replayed in the attacker's own login:
    the attacker's state is valid, but PKCE binds the code to Alice's browser."""
    victim = requests.Session()
    code = parse_qs(urlsplit(until_callback(stack, victim, alice)).query)["code"][0]
    attacker = requests.Session()
    failed = callback(stack, attacker, code=code, state=new_state(stack, attacker))
    assert failed.status_code == 400
    assert not signed_in(stack, attacker)


def test_an_id_token_minted_for_another_login_is_refused(stack, alice) -> None:
    """The ID token's nonce must be the one this browser's login sent: here the
    app's record of it is changed, as if the code had been minted for another login."""
    browser = requests.Session()
    url = until_callback(stack, browser, alice)
    key = f"_state_issuer_{parse_qs(urlsplit(url).query)['state'][0]}"
    where = oauth_states.c.key == key
    with stack.app.extensions["app_store"].begin() as conn:
        saved = json.loads(conn.execute(select(oauth_states.c.value).where(where)).scalar_one())
        saved["data"]["nonce"] = "a-nonce-of-another-login"
        conn.execute(update(oauth_states).where(where).values(value=json.dumps(saved)))
    failed = browser.get(url, timeout=HTTP_TIMEOUT)
    assert_no_crash(failed)
    assert failed.status_code == 400
    assert "Sign-in could not be completed" in failed.text
    assert not signed_in(stack, browser)


def test_a_planted_session_cookie_gains_nothing_from_the_victims_login(stack, alice) -> None:
    """Session fixation: an attacker starts a login, plants that session cookie in
    the victim's browser and keeps a copy; the victim signs in, the copy does not."""
    attacker = requests.Session()
    new_state(stack, attacker)
    planted = attacker.cookies["app_session"]
    victim = requests.Session()
    victim.cookies.update(attacker.cookies)  # the very cookie, domain and all
    done = victim.get(until_callback(stack, victim, alice), timeout=HTTP_TIMEOUT)
    assert alice in done.text
    assert victim.cookies["app_session"] != planted
    assert not signed_in(stack, attacker)


def test_an_attackers_authorization_response_does_not_log_the_victim_in(stack, make_user) -> None:
    """Login CSRF: the attacker's own code and state, sent to the victim's browser,
    do not match any login the victim's browser started."""
    attacker = requests.Session()
    url = until_callback(stack, attacker, make_user("login-mallory@example.com"))
    victim = requests.Session()
    new_state(stack, victim)
    failed = victim.get(url, timeout=HTTP_TIMEOUT)
    assert_no_crash(failed)
    assert failed.status_code == 400
    assert not signed_in(stack, victim)


def test_a_declined_login_says_so(stack) -> None:
    browser = requests.Session()
    declined = callback(stack, browser, error="access_denied", state=new_state(stack, browser))
    assert declined.status_code == 400
    assert "Sign-in was cancelled" in declined.text


@pytest.mark.parametrize("error", ["access_denied", "server_error", "made_up_error", ""])
def test_the_sign_in_error_page_says_only_its_own_words(stack, error: str) -> None:
    """Anyone can send a victim to the callback with any text: none of it is shown."""
    planted = "Your account is suspended: call +1 555 0100 and read out your password"
    browser = requests.Session()
    page = callback(
        stack,
        browser,
        error=error,
        error_description=planted,
        error_uri="https://evil.example/help",
        state=new_state(stack, browser),
    )
    assert_no_crash(page)
    assert page.status_code == 400
    assert "suspended" not in page.text and "evil.example" not in page.text
    assert "Sign-in" in page.text


# -- logging out --------------------------------------------------------------


def test_logout_ends_the_app_session_the_refresh_tokens_and_the_issuer_session(
    stack, alice
) -> None:
    browser = log_in(stack, alice)
    old_cookie = browser.cookies["app_session"]
    refresh_token = login_row(stack.app, browser).refresh_token

    def issuer_only(jar: requests.Session) -> requests.Session:
        other = requests.Session()
        for cookie in jar.cookies:
            if cookie.name != "app_session":
                other.cookies.set_cookie(copy.copy(cookie))
        return other

    # Before: the issuer's session signs a new app session in without a password.
    before = issuer_only(browser).get(f"{stack.app_url}/login", timeout=HTTP_TIMEOUT)
    assert before.url == f"{stack.app_url}/" and "Signed in as" in before.text
    after_issuer = issuer_only(browser)

    out = log_out(stack, browser)
    assert_no_crash(out)
    # Going back to the signing-out page does not post anything again.
    back = browser.get(
        f"{stack.app_url}/logout/issuer", allow_redirects=False, timeout=HTTP_TIMEOUT
    )
    assert back.status_code == 303 and "end-session" not in back.text
    assert out.url.split("?")[0] == f"{stack.app_url}/"
    assert any(hop.url.startswith(f"{stack.issuer_url}/end-session") for hop in out.history)
    assert "Log in" in out.text and "Signed in as" not in out.text

    replay = requests.Session()
    replay.cookies.set("app_session", old_cookie)
    assert not signed_in(stack, replay)

    refreshed = requests.post(
        f"{stack.issuer_url}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(stack.client_id, stack.client_secret),
        timeout=HTTP_TIMEOUT,
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"

    for jar in (browser, after_issuer):
        again = jar.get(f"{stack.app_url}/login", timeout=HTTP_TIMEOUT)
        assert again.url.startswith(f"{stack.issuer_url}/login"), again.url


def test_logout_without_a_session_just_goes_home(stack) -> None:
    browser = requests.Session()
    browser.get(f"{stack.app_url}/", timeout=HTTP_TIMEOUT)
    out = browser.post(f"{stack.app_url}/logout", timeout=HTTP_TIMEOUT)
    assert_no_crash(out)
    assert out.status_code == 400  # no CSRF token: a cross-site logout is refused


# -- headers ------------------------------------------------------------------


def _check_headers(response: requests.Response) -> tuple[float, float]:
    assert_no_crash(response)
    policy = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        assert directive in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    timing = TIMING.match(response.headers["Server-Timing"])
    assert timing, response.headers["Server-Timing"]
    return float(timing.group(1)), float(timing.group(2))


def test_pages_carry_security_headers_and_server_timing(stack, alice) -> None:
    anonymous = requests.Session()
    for path in ("/", "/no/such/page", "/healthz"):
        _, db = _check_headers(anonymous.get(f"{stack.app_url}{path}", timeout=HTTP_TIMEOUT))
        assert db == 0.0, path
    browser = log_in(stack, alice)
    for path in ("/", "/session"):
        app, db = _check_headers(browser.get(f"{stack.app_url}{path}", timeout=HTTP_TIMEOUT))
        assert db > 0.0 and app > 0.0, path
    static = anonymous.get(f"{stack.app_url}/static/app.css", timeout=HTTP_TIMEOUT)
    assert static.status_code == 200
    assert static.headers["X-Content-Type-Options"] == "nosniff"
    assert static.headers.get("Cache-Control") != "no-store"


def test_no_other_origin_may_read_the_console_token(stack, alice) -> None:
    """No CORS on the app: a page on another origin cannot read `/sql/token`."""
    browser = log_in(stack, alice)
    evil = {"Origin": "http://evil.example"}
    preflight = browser.options(
        f"{stack.app_url}/sql/token",
        headers={**evil, "Access-Control-Request-Method": "POST"},
        timeout=HTTP_TIMEOUT,
    )
    assert_no_crash(preflight)
    granted = browser.post(
        f"{stack.app_url}/sql/token",
        headers={**evil, "X-CSRFToken": csrf(browser, stack)},
        timeout=HTTP_TIMEOUT,
    )
    for response in (preflight, granted):
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers
