"""Refresh rotation and reuse detection, client_credentials, revocation, userinfo."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.issuer.oauth_flows import (
    basic,
    get_code,
    log_in,
    make_user,
    redeem,
    refresh,
    register,
)
from tests.support.jose import verify_with_jwks


@pytest.fixture
def browser(oauth_app: Flask) -> FlaskClient:
    make_user(oauth_app, claims={"team": "member"})
    client = oauth_app.test_client()
    log_in(client, "alice@example.com")
    return client


@pytest.fixture
def spa(oauth_app: Flask):
    return register(oauth_app, public=True, first_party=True)[0]


@pytest.fixture
def tokens(browser, spa) -> dict:
    code, verifier = get_code(browser, spa)
    response = redeem(browser, spa, code, verifier)
    assert response.status_code == 200
    return response.json


@pytest.fixture
def service(oauth_app: Flask):
    return register(
        oauth_app, name="billing job", grant_types=("client_credentials",), redirect_uris=()
    )


def test_refresh_rotates_the_token(browser, spa, tokens):
    first = refresh(browser, spa, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    assert first.json["refresh_token"] != tokens["refresh_token"]
    assert first.json["access_token"] != tokens["access_token"]
    assert "id_token" not in first.json
    second = refresh(browser, spa, first.json["refresh_token"])
    assert second.status_code == 200


def test_reusing_a_rotated_token_revokes_the_whole_family(browser, spa, tokens):
    newer = refresh(browser, spa, tokens["refresh_token"]).json
    newest = refresh(browser, spa, newer["refresh_token"]).json
    # An attacker (or the client) replays the first token.
    replay = refresh(browser, spa, tokens["refresh_token"])
    assert replay.status_code == 400
    assert replay.json["error"] == "invalid_grant"
    # Every token of the family is dead, the newest one included.
    dead = refresh(browser, spa, newest["refresh_token"])
    assert dead.json["error"] == "invalid_grant"


def test_families_are_independent(browser, spa, tokens):
    code, verifier = get_code(browser, spa)
    other = redeem(browser, spa, code, verifier).json
    refresh(browser, spa, tokens["refresh_token"])
    refresh(browser, spa, tokens["refresh_token"])  # replay: family one revoked
    assert refresh(browser, spa, other["refresh_token"]).status_code == 200


def test_refresh_token_of_another_client_is_refused_and_not_burnt(oauth_app, browser, spa, tokens):
    thief = register(oauth_app, public=True, first_party=True, name="thief")[0]
    assert refresh(browser, thief, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert refresh(browser, spa, tokens["refresh_token"]).status_code == 200


def test_refresh_can_narrow_scope(browser, spa, tokens):
    response = browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": spa.client_id,
            "scope": "openid",
        },
    )
    assert response.status_code == 200
    assert response.json["scope"] == "openid"


def test_refresh_token_expires(oauth_app, browser, spa, tokens, monkeypatch):
    import time

    ttl = oauth_app.config["ISSUER"].refresh_token_ttl
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + ttl + 1)
    assert refresh(browser, spa, tokens["refresh_token"]).json["error"] == "invalid_grant"


def test_revocation_kills_the_family(browser, spa, tokens):
    newer = refresh(browser, spa, tokens["refresh_token"]).json
    response = browser.post(
        "/revoke",
        data={
            "token": newer["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": spa.client_id,
        },
    )
    assert response.status_code == 200
    assert refresh(browser, spa, newer["refresh_token"]).json["error"] == "invalid_grant"


@pytest.mark.parametrize("token", ["unknown-token", "eyJhbGciOiJFUzI1NiJ9.e30.sig"])
def test_revoking_unknown_or_access_tokens_answers_200(browser, spa, token):
    response = browser.post("/revoke", data={"token": token, "client_id": spa.client_id})
    assert response.status_code == 200


def test_revocation_by_another_client_is_refused(oauth_app, browser, spa, tokens):
    other = register(oauth_app, public=True, first_party=True, name="other")[0]
    response = browser.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": other.client_id}
    )
    assert response.status_code == 400
    assert refresh(browser, spa, tokens["refresh_token"]).status_code == 200


def test_client_credentials_issues_a_token_for_the_service(oauth_app, service):
    client, secret = service
    http = oauth_app.test_client()
    response = http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client.client_id, secret)
    )
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json
    claims = verify_with_jwks(
        response.json["access_token"], http.get("/.well-known/jwks.json").data
    ).claims
    # Never a user's id: a service acts as itself (Auth0's `…@clients` convention).
    assert claims["sub"] == f"{client.client_id}@clients"
    assert claims["client_id"] == client.client_id
    # client_secret_post works too
    response = http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 200


def test_client_credentials_refused_for_clients_not_registered_for_it(oauth_app):
    client, secret = register(oauth_app, first_party=True)
    response = oauth_app.test_client().post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client.client_id, secret)
    )
    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


def test_public_client_cannot_use_client_credentials(oauth_app, spa):
    response = oauth_app.test_client().post(
        "/token", data={"grant_type": "client_credentials", "client_id": spa.client_id}
    )
    assert response.json["error"] == "invalid_client"


def test_userinfo_returns_the_user_claims(browser, tokens):
    response = browser.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status_code == 200, response.text
    assert response.json["email"] == "alice@example.com"
    assert response.json["team"] == "member"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer garbage", "Basic Zm9vOmJhcg==", "Bearer a.b.c", "Bearer ...."],
)
def test_userinfo_refuses_missing_or_bad_tokens(browser, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = browser.get("/userinfo", headers=headers)
    assert response.status_code in (400, 401)
    assert response.json["error"]


def test_userinfo_refuses_an_id_token_and_a_tampered_token(browser, tokens):
    for token in (tokens["id_token"], tokens["access_token"][:-4] + "AAAA"):
        response = browser.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json["error"] == "invalid_token"


def test_userinfo_refuses_service_tokens(oauth_app, service):
    client, secret = service
    http = oauth_app.test_client()
    access = http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "openid"},
        headers=basic(client.client_id, secret),
    ).json["access_token"]
    response = http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert response.status_code in (401, 403)


def test_issuance_reuse_and_revocation_are_audited_without_secrets(
    browser, spa, tokens, service, oauth_app, caplog
):
    caplog.set_level("INFO", logger="issuer.audit")
    client, secret = service
    issued = oauth_app.test_client().post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client.client_id, secret)
    )
    successor = refresh(browser, spa, tokens["refresh_token"]).json["refresh_token"]
    refresh(browser, spa, tokens["refresh_token"])  # a retry: the same successor again
    refresh(browser, spa, successor)
    refresh(browser, spa, tokens["refresh_token"])  # replay (its successor is used)
    code, verifier = get_code(browser, spa)
    redeem(browser, spa, code, verifier)
    redeem(browser, spa, code, verifier)  # replay
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "issuer.audit"]
    events = [line["event"] for line in lines]
    assert "oauth.token_issued" in events
    assert "oauth.refresh_retried" in events
    assert "oauth.refresh_reuse" in events
    assert "oauth.code_reuse" in events
    service_line = next(
        line
        for line in lines
        if line["event"] == "oauth.token_issued" and line["sub"] == f"{client.client_id}@clients"
    )
    assert service_line["grant"] == "client_credentials"
    assert service_line["jti"]
    log = caplog.text
    for secret_value in (secret, tokens["refresh_token"], issued.json["access_token"], code):
        assert secret_value not in log


def test_asking_for_more_scope_is_refused_and_keeps_the_token(browser, spa, tokens):
    wider = browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": spa.client_id,
            "scope": "openid email profile",
        },
    )
    assert wider.status_code == 400
    assert wider.json["error"] == "invalid_scope"
    assert refresh(browser, spa, tokens["refresh_token"]).status_code == 200


def test_a_disabled_user_cannot_refresh(oauth_app, browser, spa, tokens):
    """Disabling ends sessions, not refresh tokens: the refresh grant itself refuses."""
    from issuer.accounts import users
    from issuer.db import get_engine

    with oauth_app.app_context():
        users.set_disabled(get_engine(), "alice@example.com", True)
    response = refresh(browser, spa, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert "access_token" not in response.json


def test_userinfo_refuses_a_disabled_users_token(oauth_app, browser, tokens):
    from issuer.accounts import users
    from issuer.db import get_engine

    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert browser.get("/userinfo", headers=headers).status_code == 200
    with oauth_app.app_context():
        users.set_disabled(get_engine(), "alice@example.com", True)
    response = browser.get("/userinfo", headers=headers)
    assert response.status_code == 401
    assert "email" not in (response.json or {})
