"""The app as an OpenID Connect relying party of the issuer, via authlib.

authlib does the protocol: discovery, authorization code with PKCE (S256),
`state` and `nonce`, ID-token validation against the issuer's JWKS, refresh
and RP-initiated logout. This module only wires it to our storage and turns
its failures into the two cases a page can act on: the issuer refused
(SessionExpired: sign in again) or could not be reached (IssuerUnreachable).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, current_app
from sqlalchemy import Engine, delete, insert, select

from app.config import AppConfig
from app.logins import IssuerUnreachable, SessionExpired
from app.store import oauth_states

# Errors from the token endpoint that mean "this grant is dead", not "try later".
_DEAD_GRANT_ERRORS = {
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "invalid_token",
    # The grant no longer covers the database (the client lost its audience).
    "invalid_target",
}


class StateCache:
    """authlib's cache interface (get/set/delete) on the app's database, so
    that the PKCE verifier and nonce stay server-side, shared by workers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(oauth_states.c.value).where(
                    oauth_states.c.key == key, oauth_states.c.expires_at > time.time()
                )
            ).scalar()

    def set(self, key: str, value: str, expires_in: int) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(oauth_states).where(oauth_states.c.expires_at <= now))
            conn.execute(delete(oauth_states).where(oauth_states.c.key == key))
            conn.execute(
                insert(oauth_states).values(key=key, value=value, expires_at=now + expires_in)
            )

    def delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(oauth_states).where(oauth_states.c.key == key))


def init_app(app: Flask, config: AppConfig, engine: Engine) -> None:
    oauth = OAuth(app, cache=StateCache(engine))
    oauth.register(
        "issuer",
        client_id=config.client_id,
        client_secret=config.client_secret,
        server_metadata_url=f"{config.issuer_url}/.well-known/openid-configuration",
        client_kwargs={
            "scope": config.scope,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "default_timeout": config.http_timeout,
        },
    )
    app.extensions["oidc"] = oauth


def issuer() -> Any:
    """The registered authlib client for the issuer."""
    return current_app.extensions["oidc"].issuer


def metadata() -> dict[str, Any]:
    """The issuer's discovery document (fetched once, then cached by authlib)."""
    try:
        return issuer().load_server_metadata()
    except (requests.RequestException, ValueError) as error:
        raise IssuerUnreachable(f"discovery failed: {type(error).__name__}") from None


def refresh(refresh_token: str) -> Mapping[str, Any]:
    """Redeem a refresh token for new tokens (the issuer rotates it)."""
    metadata()
    try:
        token = issuer().fetch_access_token(grant_type="refresh_token", refresh_token=refresh_token)
    except OAuthError as error:
        if error.error in _DEAD_GRANT_ERRORS:
            raise SessionExpired(error.error) from None
        raise IssuerUnreachable(f"token endpoint: {error.error}") from None
    except (requests.RequestException, ValueError) as error:
        raise IssuerUnreachable(f"token endpoint: {type(error).__name__}") from None
    if "access_token" not in token:
        raise IssuerUnreachable("token endpoint answered without an access token")
    return token


def revoke(refresh_token: str) -> None:
    """Best effort: kill the refresh-token family at the issuer on log-out.
    The local login is gone either way; an unreachable issuer only means its
    refresh token dies at its own expiry instead."""
    config: AppConfig = current_app.config["APP"]
    try:
        endpoint = metadata().get("revocation_endpoint")
        if not endpoint:
            return
        with OAuth2Session(
            config.client_id, config.client_secret, default_timeout=config.http_timeout
        ) as client:
            client.revoke_token(endpoint, token=refresh_token, token_type_hint="refresh_token")  # noqa: S106
    except (IssuerUnreachable, requests.RequestException, OAuthError):
        current_app.logger.warning("could not revoke the refresh token at the issuer")


def end_session_form(id_token: str | None) -> tuple[str, dict[str, str]] | None:
    """Where and what to POST to end the issuer's session too (RP-initiated logout).

    A form post, not a redirect: the ID token must not ride in a URL, where
    browser history, proxies and access logs would keep it. None when the
    issuer cannot be asked (it did not answer discovery, or has no such endpoint).
    """
    config: AppConfig = current_app.config["APP"]
    try:
        endpoint = metadata().get("end_session_endpoint")
    except IssuerUnreachable:
        return None
    if not isinstance(endpoint, str) or not endpoint:
        return None
    fields = {
        "client_id": config.client_id,
        "post_logout_redirect_uri": config.post_logout_redirect_uri,
    }
    if id_token:
        fields["id_token_hint"] = id_token
    return endpoint, fields
