"""Malformed requests, as an attacker would send them: 4xx with OAuth error JSON, never a 500."""

from __future__ import annotations

import base64

import pytest
from flask import Flask

from tests.issuer.oauth_flows import (
    REDIRECT_URI,
    authorize_params,
    basic,
    log_in,
    make_user,
    pkce_pair,
    register,
)

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def service(oauth_app: Flask):
    return register(oauth_app, name="svc", grant_types=("client_credentials",), redirect_uris=())


@pytest.fixture
def http(oauth_app: Flask):
    return oauth_app.test_client()


def assert_oauth_error(response, status: int | tuple[int, ...], error: str | None = None) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.mimetype == "application/json"
    if error is not None:
        assert response.json["error"] == error, response.json


@pytest.mark.parametrize("endpoint", ["/token", "/revoke"])
@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"json": {"grant_type": "client_credentials"}}, 400, "invalid_request"),
        ({"data": "grant_type=x", "content_type": "text/plain"}, 400, "invalid_request"),
        ({"data": b"", "content_type": FORM}, (400, 401), None),
        ({"data": {"grant_type": "a" * 9000}}, 413, "invalid_request"),
        ({"data": "a=1&a=2", "content_type": FORM}, 400, "invalid_request"),
        ({"data": {"grant_type": 'x"y\\z'}}, 400, "invalid_request"),
        ({"data": {"grant_type": "caf\u00e9"}}, 400, "invalid_request"),
        ({"data": {"grant_type": "x\x00"}}, 400, "invalid_request"),
        ({"data": {'na"me': "1"}}, 400, "invalid_request"),
        ({"query_string": {"grant_type": "client_credentials"}, "data": {}}, 400, None),
    ],
)
def test_token_and_revoke_refuse_malformed_bodies(http, endpoint, kwargs, status, error):
    assert_oauth_error(http.post(endpoint, **kwargs), status, error)


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_token_accepts_post_only(http, method):
    assert_oauth_error(getattr(http, method)("/token"), 405, "invalid_request")


@pytest.mark.parametrize(
    "grant_type", [None, "", "password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer"]
)
def test_unknown_grant_types(http, service, grant_type):
    client, secret = service
    data = {} if grant_type is None else {"grant_type": grant_type}
    response = http.post(
        "/token", data=data, content_type=FORM, headers=basic(client.client_id, secret)
    )
    assert_oauth_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic",
        "Basic !!!",
        "Basic //79",  # valid base64, not UTF-8
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"unknown:secret").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer something",
        "Digest x",
    ],
)
def test_garbage_client_authentication(http, authorization):
    response = http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": authorization},
    )
    assert_oauth_error(response, (400, 401), "invalid_client")


def test_wrong_secret_for_a_real_client(http, service):
    client, secret = service
    response = http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client.client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")),
    )
    assert_oauth_error(response, 401, "invalid_client")


def test_unknown_scope_is_refused(http, service):
    client, secret = service
    response = http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        headers=basic(client.client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_scope")


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "authorization_code"},
        {"grant_type": "authorization_code", "code": "x" * 100},
        {"grant_type": "refresh_token"},
        {"grant_type": "refresh_token", "refresh_token": "nope"},
    ],
)
def test_missing_or_unknown_codes_and_refresh_tokens(oauth_app, http, data):
    client = register(oauth_app, public=True, first_party=True)[0]
    response = http.post("/token", data={**data, "client_id": client.client_id})
    assert_oauth_error(response, 400)
    assert response.json["error"] in {"invalid_request", "invalid_grant"}


def test_revoke_needs_a_token(oauth_app, http):
    client = register(oauth_app, public=True, first_party=True)[0]
    response = http.post("/revoke", data={"client_id": client.client_id})
    assert_oauth_error(response, 400, "invalid_request")
    response = http.post(
        "/revoke", data={"client_id": client.client_id, "token": "x", "token_type_hint": "bogus"}
    )
    assert_oauth_error(response, (400, 401), "unsupported_token_type")


@pytest.fixture
def browser(oauth_app: Flask):
    make_user(oauth_app)
    client = oauth_app.test_client()
    log_in(client, "alice@example.com")
    return client


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": None},
        {"redirect_uri": None},
        {"response_type": 'co"de'},
        {"client_id": 'x"\\'},
        {"redirect_uri": 'http://127.0.0.1:8000/callback"'},
        {"state": "caf\u00e9"},
        {"state": "a" * 9000},
    ],
)
def test_authorize_errors_before_the_redirect_is_trusted_are_shown_here(browser, oauth_app, change):
    client = register(oauth_app, public=True, first_party=True)[0]
    params = authorize_params(client, pkce_pair()[1])
    for key, value in change.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    response = browser.get("/authorize", query_string=params)
    assert 400 <= response.status_code < 500
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "unsupported_response_type"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
    ],
)
def test_authorize_errors_after_the_redirect_is_trusted_go_back_to_the_client(
    browser, oauth_app, change, error
):
    client = register(oauth_app, public=True, first_party=True)[0]
    params = authorize_params(client, pkce_pair()[1])
    for key, value in change.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    response = browser.get("/authorize", query_string=params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    assert f"error={error}" in location
    assert f"state={params['state']}" in location


@pytest.mark.parametrize(
    "form",
    [
        {"response_type": 'co"de', "client_id": "x"},
        {"response_type": "code", "client_id": "caf\u00e9"},
        {"redirect_uri": "http://a\\b"},
    ],
)
def test_authorize_by_post_checks_the_body_too(browser, form):
    response = browser.post("/authorize", data=form)
    assert 400 <= response.status_code < 500
    assert "Location" not in response.headers
