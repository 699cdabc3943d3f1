"""Steps of the OAuth flows, driven through the Flask test client (helpers, not tests)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from issuer.accounts import users
from issuer.accounts.models import User
from issuer.db import get_engine
from issuer.oauth import clients
from issuer.oauth.clients import Client, Registration

PASSWORD = "correct horse battery staple"
REDIRECT_URI = "http://127.0.0.1:8000/callback"


def register(app: Flask, **fields) -> tuple[Client, str | None]:
    fields.setdefault("name", "Todo app")
    fields.setdefault("redirect_uris", (REDIRECT_URI,))
    with app.app_context():
        return clients.register(get_engine(), Registration(**fields))


def make_user(app: Flask, email: str = "alice@example.com", claims: dict | None = None) -> User:
    with app.app_context():
        return users.create_user(get_engine(), email, PASSWORD, claims=claims, email_verified=True)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def log_in(browser: FlaskClient, email: str) -> None:
    page = browser.get("/login")
    response = browser.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(page.text)},
    )
    assert response.status_code == 303, response.text


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(client: Client, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "st-" + secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def redirect_params(response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(browser: FlaskClient, client: Client, **extra: str) -> tuple[str, str]:
    """A code for a first-party client and a logged-in browser; returns (code, verifier)."""
    verifier, challenge = pkce_pair()
    params = authorize_params(client, challenge, **extra)
    query = redirect_params(browser.get("/authorize", query_string=params))
    assert query["state"] == params["state"]
    return query["code"], verifier


def redeem(
    browser: FlaskClient,
    client: Client,
    code: str,
    verifier: str,
    secret: str | None = None,
    **extra: str,
):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": client.client_id,
        **extra,
    }
    if secret is not None:
        data["client_secret"] = secret
    return browser.post("/token", data=data)


def refresh(browser: FlaskClient, client: Client, refresh_token: str):
    return browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client.client_id,
        },
    )


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}
