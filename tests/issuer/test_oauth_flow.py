"""The authorization-code flow with PKCE, end to end through the Flask test client."""

from __future__ import annotations

import json
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.issuer.oauth_flows import (
    REDIRECT_URI,
    authorize_params,
    csrf_token,
    get_code,
    log_in,
    make_user,
    pkce_pair,
    redeem,
    redirect_params,
    refresh,
    register,
)
from tests.support.jose import verify_with_jwks


@pytest.fixture
def browser(oauth_app: Flask) -> FlaskClient:
    """A browser logged in to the issuer as alice (custom claim team=admin)."""
    make_user(oauth_app, claims={"team": "admin"})
    client = oauth_app.test_client()
    log_in(client, "alice@example.com")
    return client


@pytest.fixture
def spa(oauth_app: Flask):
    """A first-party public client (PKCE only, no secret)."""
    client, secret = register(oauth_app, public=True, first_party=True)
    assert secret is None
    return client


def jwks(browser: FlaskClient) -> bytes:
    return browser.get("/.well-known/jwks.json").data


def test_code_flow_issues_tokens_verifiable_with_the_published_jwks(oauth_app, browser, spa):
    code, verifier = get_code(browser, spa, nonce="n-0S6_WzA2Mj")
    response = redeem(browser, spa, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert set(body["scope"].split()) == {"openid", "email"}

    config = oauth_app.config["ISSUER"]
    access = verify_with_jwks(body["access_token"], jwks(browser))
    assert access.header["typ"] == "at+jwt"
    assert access.header["alg"] == "ES256"
    claims = access.claims
    assert claims["iss"] == config.issuer_url
    assert claims["aud"] == f"{config.issuer_url}/userinfo"  # no resource: sign-in only
    assert claims["client_id"] == spa.client_id
    assert claims["team"] == "admin"
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 5
    assert claims["jti"]

    id_token = verify_with_jwks(body["id_token"], jwks(browser))
    assert id_token.claims["aud"] == spa.client_id
    assert id_token.claims["sub"] == claims["sub"]
    assert id_token.claims["nonce"] == "n-0S6_WzA2Mj"
    assert id_token.claims["email"] == "alice@example.com"
    assert abs(id_token.claims["auth_time"] - time.time()) < 30
    from authlib.oidc.core.util import create_half_hash

    assert id_token.claims["at_hash"] == create_half_hash(body["access_token"], "ES256").decode()


def test_configured_database_audience_goes_into_allowed_clients_tokens(issuer_config, tmp_path):
    import dataclasses

    from issuer import create_app
    from issuer.keys import KeyRing

    config = dataclasses.replace(issuer_config, database_audience="neon-project-x:db")
    KeyRing(config.keys_dir).init()
    app = create_app(config)
    service, secret = register(
        app,
        grant_types=("client_credentials",),
        redirect_uris=(),
        name="svc",
        audiences=("neon-project-x:db",),
    )
    client = app.test_client()
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(service.client_id, secret),
    )
    token = verify_with_jwks(
        response.json["access_token"], client.get("/.well-known/jwks.json").data
    )
    assert token.claims["aud"] == "neon-project-x:db"


def test_anonymous_user_is_sent_to_login_and_brought_back(oauth_app, spa):
    make_user(oauth_app, email="bob@example.com")
    browser = oauth_app.test_client()
    verifier, challenge = pkce_pair()
    params = authorize_params(spa, challenge)
    response = browser.get("/authorize", query_string=params)
    assert response.status_code == 302
    login_location = response.headers["Location"]
    assert login_location.startswith("/login?next=")

    page = browser.get(login_location)
    back = browser.post(
        login_location,
        data={
            "email": "bob@example.com",
            "password": "correct horse battery staple",
            "csrf_token": csrf_token(page.text),
        },
    )
    assert back.status_code == 303
    assert back.headers["Location"].startswith("/authorize?")
    query = redirect_params(browser.get(back.headers["Location"]))
    assert query["state"] == params["state"]
    assert redeem(browser, spa, query["code"], verifier).status_code == 200


def test_prompt_none_without_session_redirects_login_required(oauth_app, spa):
    browser = oauth_app.test_client()
    _, challenge = pkce_pair()
    params = authorize_params(spa, challenge, prompt="none")
    query = redirect_params(browser.get("/authorize", query_string=params))
    assert query["error"] == "login_required"
    assert query["state"] == params["state"]


def test_third_party_client_needs_consent(oauth_app, browser):
    app_client, secret = register(oauth_app, name="Other app")
    verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge)
    page = browser.get("/authorize", query_string=params)
    assert page.status_code == 200
    assert "Other app" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"

    # Without the CSRF token the decision is refused.
    forged = browser.post("/authorize", query_string=params, data={"allow": "Allow"})
    assert forged.status_code == 400
    assert "Location" not in forged.headers

    denied = browser.post(
        "/authorize",
        query_string=params,
        data={"deny": "Deny", "csrf_token": csrf_token(page.text)},
    )
    assert redirect_params(denied)["error"] == "access_denied"

    allowed = browser.post(
        "/authorize",
        query_string=params,
        data={"allow": "Allow", "csrf_token": csrf_token(page.text)},
    )
    query = redirect_params(allowed)
    assert query["state"] == params["state"]
    response = redeem(browser, app_client, query["code"], verifier, secret=secret)
    assert response.status_code == 200, response.text


def test_confidential_client_must_authenticate(oauth_app, browser):
    app_client, secret = register(oauth_app, first_party=True)
    code, verifier = get_code(browser, app_client)
    assert redeem(browser, app_client, code, verifier).status_code == 401  # no secret
    code, verifier = get_code(browser, app_client)
    wrong = redeem(browser, app_client, code, verifier, secret=secret + "x")
    assert wrong.status_code == 401
    assert wrong.json["error"] == "invalid_client"
    code, verifier = get_code(browser, app_client)
    assert redeem(browser, app_client, code, verifier, secret=secret).status_code == 200


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
    ],
)
def test_pkce_s256_is_required_at_authorize(browser, spa, change, error):
    _, challenge = pkce_pair()
    params = authorize_params(spa, challenge)
    for key, value in change.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    query = redirect_params(browser.get("/authorize", query_string=params))
    assert query["error"] == error
    assert query["state"] == params["state"]
    assert "code" not in query


def test_plain_pkce_is_refused_even_for_confidential_clients(oauth_app, browser):
    app_client, _ = register(oauth_app, first_party=True)
    params = authorize_params(app_client, "a" * 43, code_challenge_method="plain")
    assert redirect_params(browser.get("/authorize", query_string=params))["error"] == (
        "invalid_request"
    )


@pytest.mark.parametrize("verifier", [None, "wrong-" + "v" * 50, "short"])
def test_token_refuses_missing_or_wrong_verifier(browser, spa, verifier):
    code, _ = get_code(browser, spa)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": spa.client_id,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    response = browser.post("/token", data=data)
    assert response.status_code == 400
    assert response.json["error"] in {"invalid_request", "invalid_grant"}


def test_code_is_single_use_and_reuse_revokes_its_tokens(browser, spa):
    code, verifier = get_code(browser, spa)
    first = redeem(browser, spa, code, verifier)
    assert first.status_code == 200
    again = redeem(browser, spa, code, verifier)
    assert again.status_code == 400
    assert again.json["error"] == "invalid_grant"
    # The refresh token the code produced is dead now.
    dead = refresh(browser, spa, first.json["refresh_token"])
    assert dead.status_code == 400
    assert dead.json["error"] == "invalid_grant"


def test_code_expires_after_60_seconds(oauth_app, browser, spa, monkeypatch):
    code, verifier = get_code(browser, spa)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    assert redeem(browser, spa, code, verifier).json["error"] == "invalid_grant"


def test_code_is_bound_to_its_client(oauth_app, browser, spa):
    other, _ = register(oauth_app, public=True, first_party=True, name="Other")
    code, verifier = get_code(browser, spa)
    stolen = redeem(browser, other, code, verifier)
    assert stolen.json["error"] == "invalid_grant"
    # The rightful client can still use it: a foreign client cannot burn codes.
    assert redeem(browser, spa, code, verifier).status_code == 200


def test_code_stored_only_as_digest(oauth_app, browser, spa):
    from sqlalchemy import select

    from issuer.db import get_engine, secret_digest
    from issuer.oauth.codes import codes_table

    code, _ = get_code(browser, spa)
    with oauth_app.app_context(), get_engine().connect() as conn:
        stored = conn.execute(select(codes_table)).all()
    dumped = json.dumps([list(row) for row in stored], default=str)
    assert code not in dumped
    assert secret_digest(code) in dumped


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT_URI + "/",
        REDIRECT_URI + "x",
        REDIRECT_URI + "?a=1",
        REDIRECT_URI + "#frag",
        REDIRECT_URI[:-1],
        REDIRECT_URI.replace("127.0.0.1", "localhost"),
        REDIRECT_URI.upper(),
        "https://evil.example/callback",
    ],
)
def test_redirect_uri_must_match_exactly_and_errors_stay_on_the_issuer(browser, spa, redirect_uri):
    _, challenge = pkce_pair()
    params = authorize_params(spa, challenge, redirect_uri=redirect_uri)
    response = browser.get("/authorize", query_string=params)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_request" in response.text


def test_unknown_client_error_stays_on_the_issuer(browser):
    response = browser.get(
        "/authorize",
        query_string={"response_type": "code", "client_id": "nope", "redirect_uri": REDIRECT_URI},
    )
    assert response.status_code in (400, 401)
    assert "Location" not in response.headers
    assert "invalid_client" in response.text


def test_token_redirect_uri_must_match_the_authorization_request(browser, spa):
    code, verifier = get_code(browser, spa)
    response = browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI + "/",
            "code_verifier": verifier,
            "client_id": spa.client_id,
        },
    )
    assert response.json["error"] == "invalid_grant"


def test_disabled_user_gets_no_tokens(oauth_app, browser, spa):
    from issuer.accounts import users
    from issuer.db import get_engine

    code, verifier = get_code(browser, spa)
    with oauth_app.app_context():
        users.set_disabled(get_engine(), "alice@example.com", True)
    assert redeem(browser, spa, code, verifier).json["error"] == "invalid_grant"


def test_a_nonce_is_used_once_per_client(oauth_app, browser, spa):
    """A replayed authentication request (same client, same nonce) gets no second code."""
    code, _ = get_code(browser, spa, nonce="n-once")
    assert code
    _, challenge = pkce_pair()
    params = authorize_params(spa, challenge, nonce="n-once")
    replay = redirect_params(browser.get("/authorize", query_string=params))
    assert replay["error"] == "invalid_request"
    assert "code" not in replay
    other = register(oauth_app, public=True, first_party=True, name="Other app")[0]
    assert get_code(browser, other, nonce="n-once")[0], "another client's nonces are its own"
