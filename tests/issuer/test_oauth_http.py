"""The whole flow against the issuer as production serves it (`python -m issuer serve`) on a loopback port."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from issuer import create_app
from issuer.config import Config
from issuer.keys import KeyRing
from tests.issuer.oauth_flows import (
    PASSWORD,
    REDIRECT_URI,
    csrf_token,
    make_user,
    pkce_pair,
    register,
)
from tests.issuer.served_issuer import served_issuer
from tests.support.jose import verify_with_jwks

TIMEOUT = 10


@pytest.fixture
def served(issuer_config: Config, tmp_path) -> Iterator[tuple[str, object]]:
    """gunicorn serving the issuer; yields (base URL, an app on the same storage)."""
    KeyRing(issuer_config.keys_dir).init()
    with served_issuer(
        tmp_path,
        conf=True,
        ISSUER_KEYS_DIR=str(issuer_config.keys_dir),
        ISSUER_DATABASE_URL=issuer_config.database_url,
        ISSUER_DATA_DIR=str(issuer_config.data_dir),
        ISSUER_SECRET_KEY=issuer_config.secret_key or "",
    ) as base:
        yield base, create_app(dataclasses.replace(issuer_config, issuer_url=base))


def test_code_flow_refresh_userinfo_and_logout_over_http(served):
    base, app = served
    make_user(app, claims={"team": "admin"})
    client, secret = register(
        app, first_party=True, post_logout_redirect_uris=("http://127.0.0.1:8000/bye",)
    )
    browser = requests.Session()
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "s-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    to_login = browser.get(
        base + "/authorize", params=params, allow_redirects=False, timeout=TIMEOUT
    )
    assert to_login.status_code == 302
    login_url = base + to_login.headers["Location"]
    page = browser.get(login_url, timeout=TIMEOUT)
    back = browser.post(
        login_url,
        data={
            "email": "alice@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_token(page.text),
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert back.status_code == 303
    to_client = browser.get(base + back.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    query = parse_qs(urlsplit(to_client.headers["Location"]).query)
    assert query["state"] == ["s-123"]

    tokens = requests.post(
        base + "/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(client.client_id, secret),
        timeout=TIMEOUT,
    )
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()

    discovery = requests.get(base + "/.well-known/openid-configuration", timeout=TIMEOUT).json()
    jwks = requests.get(discovery["jwks_uri"], timeout=TIMEOUT).content
    access = verify_with_jwks(body["access_token"], jwks).claims
    id_token = verify_with_jwks(body["id_token"], jwks).claims
    assert access["iss"] == id_token["iss"] == discovery["issuer"] == base
    assert access["team"] == "admin"
    assert id_token["nonce"] == "n-456"

    info = requests.get(
        discovery["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=TIMEOUT,
    )
    assert info.json()["sub"] == access["sub"]

    rotated = requests.post(
        discovery["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(client.client_id, secret),
        timeout=TIMEOUT,
    )
    assert rotated.status_code == 200

    def present(refresh_token: str) -> requests.Response:
        return requests.post(
            discovery["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client.client_id, secret),
            timeout=TIMEOUT,
        )

    # A retry inside the reuse window gets the same successor; once that is used,
    # the old token is a replay.
    assert present(body["refresh_token"]).json()["refresh_token"] == rotated.json()["refresh_token"]
    assert present(rotated.json()["refresh_token"]).status_code == 200
    assert present(body["refresh_token"]).json()["error"] == "invalid_grant"

    bye = browser.get(
        discovery["end_session_endpoint"],
        params={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": "http://127.0.0.1:8000/bye",
            "state": "z",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert bye.headers["Location"] == "http://127.0.0.1:8000/bye?state=z"
    assert browser.get(base + "/account", allow_redirects=False, timeout=TIMEOUT).status_code == 302
