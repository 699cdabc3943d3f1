"""OpenID Connect authentication requests: `prompt=login`, `max_age`, `prompt=none`.

A re-authentication an RP asks for is bound to the request server-side: neither
the login page's `next` URL nor the request replayed can skip the password.
"""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from issuer.accounts.models import login_sessions
from issuer.db import get_engine
from tests.issuer.oauth_flows import (
    PASSWORD,
    authorize_params,
    csrf_token,
    pkce_pair,
    redeem,
    redirect_params,
    register,
)
from tests.support.jose import verify_with_jwks


@pytest.fixture
def spa(oauth_app: Flask):
    return register(oauth_app, public=True, first_party=True)[0]


def age_login(app: Flask, seconds: float) -> None:
    """Pretend every login session started `seconds` earlier."""
    with app.app_context(), get_engine().begin() as conn:
        conn.execute(
            update(login_sessions).values(created_at=login_sessions.c.created_at - seconds)
        )


def password_again(alice_browser: FlaskClient, login_location: str) -> str:
    """Submit the login form the request was sent to; returns where it goes next."""
    page = alice_browser.get(login_location)
    assert page.status_code == 200 and 'name="password"' in page.text
    back = alice_browser.post(
        login_location,
        data={
            "email": "alice@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_token(page.text),
        },
    )
    assert back.status_code == 303, back.text
    return back.headers["Location"]


@pytest.mark.parametrize("extra", [{"prompt": "login"}, {"max_age": "0"}])
def test_a_fresh_login_is_required_and_replaying_next_does_not_skip_it(
    oauth_app: Flask, alice_browser: FlaskClient, spa, extra: dict[str, str]
) -> None:
    age_login(oauth_app, 5)
    verifier, challenge = pkce_pair()
    params = authorize_params(spa, challenge, **extra)
    first = alice_browser.get("/authorize", query_string=params)
    assert first.status_code == 302 and first.headers["Location"].startswith("/login?next=")
    login_location = first.headers["Location"]
    next_url = alice_browser.get(login_location).request.args["next"]

    # The attack: request the login page's `next` without logging in.
    for _ in range(2):
        replay = alice_browser.get(next_url)
        assert replay.status_code == 302
        assert replay.headers["Location"].startswith("/login?next="), "code issued without a login"

    back = password_again(alice_browser, login_location)
    assert back == next_url
    before = int(time.time())
    query = redirect_params(alice_browser.get(back))
    assert query["state"] == params["state"]
    tokens = redeem(alice_browser, spa, query["code"], verifier).json
    claims = verify_with_jwks(
        tokens["id_token"], alice_browser.get("/.well-known/jwks.json").data
    ).claims
    assert claims["auth_time"] >= before - 1, "auth_time is the new login's"


def test_max_age_accepts_a_recent_login_and_refuses_an_old_one(
    oauth_app: Flask, alice_browser: FlaskClient, spa
) -> None:
    _, challenge = pkce_pair()
    recent = alice_browser.get(
        "/authorize", query_string=authorize_params(spa, challenge, max_age="600")
    )
    assert "code" in redirect_params(recent)
    age_login(oauth_app, 700)
    old = alice_browser.get(
        "/authorize", query_string=authorize_params(spa, challenge, max_age="600")
    )
    assert old.status_code == 302 and old.headers["Location"].startswith("/login?next=")


def test_prompt_none_answers_instead_of_showing_a_page(
    oauth_app: Flask, alice_browser, spa
) -> None:
    _, challenge = pkce_pair()
    fine = alice_browser.get(
        "/authorize", query_string=authorize_params(spa, challenge, prompt="none")
    )
    assert "code" in redirect_params(fine)

    age_login(oauth_app, 700)
    stale = authorize_params(spa, challenge, prompt="none", max_age="60")
    assert redirect_params(alice_browser.get("/authorize", query_string=stale))["error"] == (
        "login_required"
    )

    third_party, _ = register(oauth_app, public=True, name="Other app")
    consent = authorize_params(third_party, challenge, prompt="none")
    assert redirect_params(alice_browser.get("/authorize", query_string=consent))["error"] == (
        "consent_required"
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"prompt": "none login"},
        {"prompt": "sometimes"},
        {"max_age": "-1"},
        {"max_age": "soon"},
        {"max_age": "9" * 20},
    ],
)
def test_malformed_prompt_or_max_age_is_invalid_request(
    alice_browser: FlaskClient, spa, extra: dict[str, str]
) -> None:
    _, challenge = pkce_pair()
    params = authorize_params(spa, challenge, **extra)
    query = redirect_params(alice_browser.get("/authorize", query_string=params))
    assert query["error"] == "invalid_request"
    assert query["state"] == params["state"]


def test_prompt_consent_shows_consent_even_to_a_first_party_client(
    alice_browser: FlaskClient, spa
) -> None:
    _, challenge = pkce_pair()
    page = alice_browser.get(
        "/authorize", query_string=authorize_params(spa, challenge, prompt="login consent")
    )
    # A login first (prompt=login), then the consent page (prompt=consent).
    assert page.status_code == 302
    back = password_again(alice_browser, page.headers["Location"])
    consent = alice_browser.get(back)
    assert consent.status_code == 200 and "Allow" in consent.text


def test_an_abandoned_fresh_login_does_not_count_hours_later(
    oauth_app: Flask, alice_browser: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The login a request asked for serves that request for minutes, not for ever:
    a consent page left open, submitted hours later, asks for the password again."""
    from issuer.oauth import prompts

    third_party, _ = register(oauth_app, public=True, name="Other app")
    _, challenge = pkce_pair()
    params = authorize_params(third_party, challenge, prompt="login")
    first = alice_browser.get("/authorize", query_string=params)
    back = password_again(alice_browser, first.headers["Location"])
    consent = alice_browser.get(back)
    assert consent.status_code == 200 and "Allow" in consent.text
    later = time.time() + prompts.MARK_LIFETIME + 60
    monkeypatch.setattr(prompts.time, "time", lambda: later)
    submitted = alice_browser.post(
        back, data={"csrf_token": csrf_token(consent.text), "allow": "Allow"}
    )
    assert submitted.status_code == 302
    assert submitted.headers["Location"].startswith("/login?next="), "code issued on a stale login"
