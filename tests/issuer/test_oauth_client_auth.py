"""One client-authentication method per request (RFC 6749 section 2.3)."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.issuer.oauth_flows import basic, register


@pytest.fixture
def service(oauth_app: Flask):
    return register(oauth_app, name="worker", grant_types=("client_credentials",), redirect_uris=())


@pytest.fixture
def other(oauth_app: Flask):
    return register(oauth_app, name="other", grant_types=("client_credentials",), redirect_uris=())


@pytest.mark.parametrize("endpoint", ["/token", "/revoke"])
def test_a_wrong_basic_secret_beside_a_right_post_secret_is_refused(
    oauth_app: Flask, service, endpoint: str
) -> None:
    client, secret = service
    body = {"client_id": client.client_id, "client_secret": secret}
    body |= {"grant_type": "client_credentials"} if endpoint == "/token" else {"token": "x"}
    response = oauth_app.test_client().post(
        endpoint, data=body, headers=basic(client.client_id, "wrong-secret")
    )
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert "access_token" not in response.json


def test_two_right_methods_are_refused_too(oauth_app: Flask, service) -> None:
    client, secret = service
    response = oauth_app.test_client().post(
        "/token",
        data={"grant_type": "client_credentials", "client_secret": secret},
        headers=basic(client.client_id, secret),
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_the_body_may_not_name_another_client_than_the_header(
    oauth_app: Flask, service, other
) -> None:
    client, secret = service
    response = oauth_app.test_client().post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": other[0].client_id},
        headers=basic(client.client_id, secret),
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    same = oauth_app.test_client().post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": client.client_id},
        headers=basic(client.client_id, secret),
    )
    assert same.status_code == 200, same.text


@pytest.mark.parametrize("separator", ["\t", "  ", " \t"])
def test_basic_is_recognised_however_it_is_spaced(
    oauth_app: Flask, service, other, separator: str
) -> None:
    """authlib splits `Basic<whitespace>credentials` on any whitespace; so do we."""
    client, secret = service
    header = basic(client.client_id, "wrong-secret")["Authorization"].replace(" ", separator, 1)
    response = oauth_app.test_client().post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret,
        },
        headers={"Authorization": header},
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


@pytest.mark.parametrize("header", [" ", "Basic ", "Basic  ", "\t", "Basic \t"])
@pytest.mark.parametrize("endpoint", ["/token", "/revoke"])
def test_an_authorization_header_of_whitespace_is_a_clean_401(
    oauth_app: Flask, service, header: str, endpoint: str
) -> None:
    """authlib unpacks `header.split(None, 1)`: a header of whitespace was a 500
    (found by tests/issuer/test_oauth_fuzz.py)."""
    response = oauth_app.test_client().post(
        endpoint, data={"grant_type": "client_credentials", "token": "x"},
        headers={"Authorization": header},
    )  # fmt: skip
    assert response.status_code in (400, 401), response.text
