"""Account pages driven through Flask's test client: the helpers the account tests share."""

from __future__ import annotations

import base64
import json
import re
import secrets
from urllib.parse import urlsplit

from flask.testing import FlaskClient

from tests.issuer.oauth_flows import PASSWORD, csrf_token

NEW_PASSWORD = "a brand new passphrase"


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}@example.com"


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def post_page_form(browser: FlaskClient, page_url: str, action: str, **fields: str):
    """Open `page_url`, then post its form (with its CSRF token and hidden token)."""
    page = browser.get(page_url)
    assert page.status_code == 200, page.text
    data = {"csrf_token": csrf_token(page.text), **fields}
    hidden = re.search(r'name="token" type="hidden" value="([^"]+)"', page.text)
    if hidden:
        data.setdefault("token", hidden.group(1))
    return browser.post(action, data=data)


def sign_up(browser: FlaskClient, email: str, next_url: str | None = None, **environ):
    path = "/signup" + (f"?next={next_url}" if next_url else "")
    page = browser.get(path, **environ)
    return browser.post(
        path,
        data={
            "csrf_token": csrf_token(page.text),
            "email": email,
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
        **environ,
    )


def log_in(browser: FlaskClient, email: str, password: str = PASSWORD):
    page = browser.get("/login")
    return browser.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(page.text)},
    )


def forgot(browser: FlaskClient, email: str, address: str = "127.0.0.1"):
    env = {"REMOTE_ADDR": address}
    page = browser.get("/forgot-password", environ_base=env)
    return browser.post(
        "/forgot-password",
        data={"email": email, "csrf_token": csrf_token(page.text)},
        environ_base=env,
    )


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
