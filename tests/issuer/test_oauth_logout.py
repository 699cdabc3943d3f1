"""RP-initiated logout at /end-session."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.issuer.oauth_flows import csrf_token, get_code, log_in, make_user, redeem, register

LOGGED_OUT = "http://127.0.0.1:8000/logged-out"


@pytest.fixture
def spa(oauth_app: Flask):
    return register(
        oauth_app, public=True, first_party=True, post_logout_redirect_uris=(LOGGED_OUT,)
    )[0]


@pytest.fixture
def id_token(alice_browser, spa) -> str:
    code, verifier = get_code(alice_browser, spa)
    return redeem(alice_browser, spa, code, verifier).json["id_token"]


def logged_in(alice_browser: FlaskClient) -> bool:
    return alice_browser.get("/account").status_code == 200


def test_logout_with_hint_and_registered_uri_redirects_with_state(alice_browser, id_token):
    assert logged_in(alice_browser)
    response = alice_browser.get(
        "/end-session",
        query_string={
            "id_token_hint": id_token,
            "post_logout_redirect_uri": LOGGED_OUT,
            "state": "xyz",
        },
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == LOGGED_OUT
    assert parse_qs(location.query) == {"state": ["xyz"]}
    assert not logged_in(alice_browser)


def test_unregistered_post_logout_uri_is_not_followed(alice_browser, id_token):
    response = alice_browser.get(
        "/end-session",
        query_string={
            "id_token_hint": id_token,
            "post_logout_redirect_uri": "https://evil.example/",
        },
    )
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "logged out" in response.text
    assert not logged_in(alice_browser)


def test_logout_without_hint_asks_for_confirmation(alice_browser):
    page = alice_browser.get("/end-session", query_string={"post_logout_redirect_uri": LOGGED_OUT})
    assert page.status_code == 200
    assert logged_in(alice_browser)  # a link alone logs nobody out
    forged = alice_browser.post("/end-session", data={"confirm": "Log out"})
    assert forged.status_code == 400
    assert logged_in(alice_browser)
    posted = alice_browser.post("/end-session", data={"post_logout_redirect_uri": LOGGED_OUT})
    assert posted.status_code == 200 and "Log out now?" in posted.text
    assert logged_in(alice_browser)
    done = alice_browser.post(
        "/end-session",
        query_string={"post_logout_redirect_uri": LOGGED_OUT},
        data={"csrf_token": csrf_token(page.text), "confirm": "Log out"},
    )
    assert done.status_code == 200  # no hint: no redirect, per the spec
    assert not logged_in(alice_browser)


@pytest.mark.parametrize("hint", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_logout_with_a_bad_hint_is_refused_without_redirect(alice_browser, hint):
    response = alice_browser.get(
        "/end-session",
        query_string={"id_token_hint": hint, "post_logout_redirect_uri": LOGGED_OUT},
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert logged_in(alice_browser)


def test_a_posted_hint_naming_the_user_logs_out_without_asking(alice_browser, id_token):
    """What the todo app does: the ID token in a form body, never in a URL."""
    response = alice_browser.post(
        "/end-session",
        data={"id_token_hint": id_token, "post_logout_redirect_uri": LOGGED_OUT},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == LOGGED_OUT
    assert not logged_in(alice_browser)


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_users_hint_asks_before_logging_this_user_out(
    oauth_app: Flask, spa, method: str
) -> None:
    """Bob's ID token (say, from a page Bob controls) cannot log Alice out silently."""
    make_user(oauth_app, email="alice@example.com")
    make_user(oauth_app, email="bob@example.com")
    bob = oauth_app.test_client()
    log_in(bob, "bob@example.com")
    code, verifier = get_code(bob, spa)
    bobs_hint = redeem(bob, spa, code, verifier).json["id_token"]

    alice = oauth_app.test_client()
    log_in(alice, "alice@example.com")
    params = {"id_token_hint": bobs_hint, "post_logout_redirect_uri": LOGGED_OUT}
    if method == "get":
        page = alice.get("/end-session", query_string=params)
    else:
        page = alice.post("/end-session", data=params)
    assert page.status_code == 200 and "Log out now?" in page.text
    assert "Location" not in page.headers
    assert logged_in(alice)
    # The confirmation carries the request on in its body, and needs its CSRF token.
    assert bobs_hint in page.text
    assert alice.post("/end-session", data=params).status_code == 200
    assert logged_in(alice)
    confirmed = alice.post(
        "/end-session",
        data={**params, "csrf_token": csrf_token(page.text), "confirm": "Log out"},
    )
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == LOGGED_OUT
    assert not logged_in(alice)
    assert logged_in(bob)


def test_a_cross_site_post_without_cookies_writes_no_cookie_and_hops_to_our_origin(
    oauth_app: Flask, alice_browser, id_token
) -> None:
    """Browsers withhold SameSite=Lax cookies from a cross-site POST. The answer must
    not set one (it would replace the login it cannot see): a page of ours reposts
    the request, and that same-origin post carries the cookie."""
    withheld = oauth_app.test_client()  # the same alice_browser, minus the Lax cookie
    params = {"id_token_hint": id_token, "post_logout_redirect_uri": LOGGED_OUT}
    hop = withheld.post("/end-session", data=params)
    assert hop.status_code == 200 and "Continue" in hop.text
    assert "Set-Cookie" not in hop.headers
    assert logged_in(alice_browser)
    assert 'name="continued"' in hop.text and id_token in hop.text
    done = alice_browser.post("/end-session", data={**params, "continued": "1"})
    assert done.status_code == 302 and done.headers["Location"] == LOGGED_OUT
    assert not logged_in(alice_browser)


def test_without_a_login_there_is_nothing_to_end_and_no_cookie_is_touched(
    oauth_app: Flask, id_token
) -> None:
    stranger = oauth_app.test_client()
    for response in (
        stranger.get("/end-session", query_string={"id_token_hint": id_token}),
        stranger.post("/end-session", data={"id_token_hint": id_token, "continued": "1"}),
        stranger.post("/end-session", data={"continued": "1"}),
    ):
        assert response.status_code in (200, 302)
        assert "Set-Cookie" not in response.headers


def test_an_access_token_is_no_id_token_hint(alice_browser, spa) -> None:
    """A resource server holding Alice's access token cannot log her out silently."""
    code, verifier = get_code(alice_browser, spa)
    access_token = redeem(alice_browser, spa, code, verifier).json["access_token"]
    response = alice_browser.post(
        "/end-session",
        data={"id_token_hint": access_token, "post_logout_redirect_uri": LOGGED_OUT},
    )
    assert response.status_code == 400
    assert logged_in(alice_browser)
