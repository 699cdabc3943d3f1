"""Security headers: nosniff everywhere, form-action on every page."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from flask import Flask

from tests.issuer.oauth_flows import REDIRECT_URI, register


@pytest.mark.parametrize(
    "path",
    ["/login", "/signup", "/.well-known/jwks.json", "/.well-known/openid-configuration",
     "/healthz", "/token", "/authorize", "/no-such-page"],
)  # fmt: skip
def test_every_response_says_nosniff(oauth_app: Flask, path: str) -> None:
    response = oauth_app.test_client().get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def form_action(response) -> list[str]:
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    return policy["form-action"].split()


def test_pages_post_their_forms_to_the_issuer_only(oauth_app: Flask) -> None:
    for path in ("/login", "/signup"):
        assert form_action(oauth_app.test_client().get(path)) == ["'self'"]


def test_a_login_that_continues_an_authorization_request_may_reach_its_client(
    oauth_app: Flask,
) -> None:
    """Browsers hold a form's redirects to form-action: the client's registered
    redirect origin is allowed, an unregistered one never is."""
    client, _ = register(oauth_app, first_party=True)
    authorize = "/authorize?" + urlencode(
        {"client_id": client.client_id, "redirect_uri": REDIRECT_URI, "response_type": "code"}
    )
    page = oauth_app.test_client().get(f"/login?next={quote(authorize)}")
    assert form_action(page) == ["'self'", "http://127.0.0.1:8000"]
    forged = "/authorize?" + urlencode(
        {"client_id": client.client_id, "redirect_uri": "https://evil.example/cb"}
    )
    page = oauth_app.test_client().get(f"/login?next={quote(forged)}")
    assert form_action(page) == ["'self'"]
