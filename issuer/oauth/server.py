"""The authlib AuthorizationServer: grants, endpoints and the token generator.

Access tokens are ES256 JWTs from the key ring (what Neon verifies); refresh
tokens are opaque random strings whose digests live in the database.
"""

from __future__ import annotations

import base64

import orjson
from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request, authenticate_client
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from flask import Flask, Response, current_app, request

from issuer.audit import audit
from issuer.config import Config
from issuer.db import get_engine
from issuer.oauth import clients, refresh_tokens
from issuer.oauth.endpoints import EndSessionEndpoint, PublishedKeys, RevocationEndpoint
from issuer.oauth.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OpenIDCode,
    RefreshTokenGrant,
    ResourceIndicators,
    S256CodeChallenge,
)
from issuer.oauth.refresh_tokens import RefreshToken
from issuer.tokens import database_role, mint_access_token


class AccessTokenMinter:
    """authlib's access-token generator hook: an RFC 9068 JWT per token.

    `audience` is the resource the grant chose (`issuer.oauth.resources`); a
    token for no resource names the issuer's `/userinfo`, the only place it opens.
    """

    def __init__(self, config: Config) -> None:
        self.issuer = config.issuer_url
        self.userinfo = config.userinfo_audience
        self.database = config.database_audience
        self.ttl = config.access_token_ttl

    def __call__(
        self, client, grant_type: str, user, scope: str, audience: str | None = None
    ) -> str:
        return mint_access_token(
            current_app.extensions["keyring"],
            issuer=self.issuer,
            subject=service_subject(client.get_client_id()) if user is None else user.id,
            audience=audience or self.userinfo,
            ttl=self.ttl,
            scope=scope,
            client_id=client.get_client_id(),
            role=database_role(audience, self.database),
            extra_claims={} if user is None else user.claims,
        )


def service_subject(client_id: str) -> str:
    """The `sub` of a client's own (client_credentials) tokens.

    Never a user's: user ids are UUIDs and client ids cannot hold `@`, so a
    client registered under a user's id still cannot act as that user.
    """
    return f"{client_id}@clients"


class TokenGenerator(BearerTokenGenerator):
    """authlib's bearer-token response, minted for the audience the grant chose.

    `generate` is authlib's with one more argument, passed to the minter; the
    grants call it through `ResourceGrantMixin.generate_token`.
    """

    def generate(
        self,
        grant_type,
        client,
        user=None,
        scope=None,
        expires_in=None,
        include_refresh_token=True,
        audience: str | None = None,
    ) -> dict:
        scope = self.get_allowed_scope(client, scope)
        token = {
            "token_type": "Bearer",
            "access_token": self.access_token_generator(
                client=client, grant_type=grant_type, user=user, scope=scope, audience=audience
            ),
        }
        if expires_in is None:
            expires_in = self._get_expires_in(client, grant_type)
        if expires_in:
            token["expires_in"] = expires_in
        if include_refresh_token and self.refresh_token_generator:
            token["refresh_token"] = self.refresh_token_generator(
                client=client, grant_type=grant_type, user=user, scope=scope
            )
        if scope:
            token["scope"] = scope
        return token


def token_id(access_token: str) -> str:
    """The `jti` that `mint_access_token` chose, read back for the audit log."""
    payload = access_token.split(".", 2)[1]
    return orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]


def _new_refresh_token(**_context: object) -> str:
    return refresh_tokens.new_token()


def _basic_auth_or_none(query_client, request):
    """authlib's client_secret_basic, treating undecodable or empty credentials as
    absent (they would otherwise surface as a UnicodeDecodeError, or a ValueError
    from unpacking a header of whitespace)."""
    try:
        return authenticate_client.authenticate_client_secret_basic(query_client, request)
    except (UnicodeDecodeError, ValueError):
        return None


class AuthorizationServer(_AuthorizationServer):
    """authlib's Flask server with our grants, endpoints, client store and tokens."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.config: Config = app.config["ISSUER"]
        self.published_keys = PublishedKeys()
        self.clients = clients.ClientCache()
        self.init_app(app)
        self.scopes_supported = list(clients.SUPPORTED_SCOPES)
        self.register_client_auth_method("client_secret_basic", _basic_auth_or_none)
        self.register_grant(
            AuthorizationCodeGrant, [S256CodeChallenge(), OpenIDCode(), ResourceIndicators()]
        )
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(EndSessionEndpoint)

    def create_bearer_token_generator(self, app_config) -> TokenGenerator:
        config: Config = app_config["ISSUER"]
        self.token_generator = TokenGenerator(
            AccessTokenMinter(config), _new_refresh_token, config.access_token_ttl
        )
        return self.token_generator

    def create_oauth2_request(self, given: object) -> OAuth2Request:
        """The request `issuer.oauth.form_post` built, or authlib's over Flask's request
        object itself, not the context-local proxy: authlib reads it a dozen times per
        call, a proxy lookup each time."""
        if isinstance(given, OAuth2Request):
            return given
        return FlaskOAuth2Request(request._get_current_object())  # type: ignore[attr-defined]

    def handle_response(self, status_code: int, payload: object, headers) -> Response:
        """authlib's response, with its JSON written by orjson (compact, a tenth of the time)."""
        if isinstance(payload, dict):
            payload = orjson.dumps(payload)
        return Response(payload, status=status_code, headers=headers)

    def authenticate_client(self, request, methods, endpoint: str = "token"):
        """authlib's client authentication, after refusing requests that carry two
        methods (RFC 6749 section 2.3: a client MUST NOT use more than one).

        A wrong Basic secret beside a right `client_secret_post` must not pass on the
        second, nor may the body name another client than the header.
        """
        scheme, *_ = (request.headers.get("Authorization") or "").split(None, 1) or [""]
        if scheme.lower() == "basic":
            if "client_secret" in request.form or "client_assertion" in request.form:
                raise InvalidRequestError("Use one client authentication method per request.")
            try:
                basic_id, _ = extract_basic_authorization(request.headers)
            except (UnicodeDecodeError, ValueError):  # "Basic " with nothing after it
                basic_id = None
            if "client_id" in request.form and request.form["client_id"] != basic_id:
                raise InvalidRequestError("'client_id' does not match the client's credentials.")
        return super().authenticate_client(request, methods, endpoint)

    def query_client(self, client_id: str) -> clients.Client | None:
        return self.clients.get(get_engine(), client_id)

    def save_token(self, token: dict, request) -> None:
        """Store the refresh token (if any) in its family, and audit the issuance."""
        client_id = request.client.get_client_id()
        user = request.user
        # A refresh's successor was stored with its rotation (`refresh_tokens.rotate`).
        if "refresh_token" in token and request.payload.grant_type != "refresh_token":
            parent = request.authorization_code
            refresh_tokens.save(
                get_engine(),
                token["refresh_token"],
                RefreshToken(
                    family_id=parent.family_id,
                    client_id=client_id,
                    user_id=user.id,
                    scope=token.get("scope", ""),
                    auth_time=parent.auth_time,
                    resources=parent.resources,
                ),
                self.config.refresh_token_ttl,
            )
        audit(
            "oauth.token_issued",
            client_id=client_id,
            sub=service_subject(client_id) if user is None else user.id,
            aud=request.audience,
            grant=request.payload.grant_type,
            jti=token_id(token["access_token"]),
            scope=token.get("scope", ""),
        )
