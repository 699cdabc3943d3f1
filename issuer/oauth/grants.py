"""authlib's grants, bound to our storage: what each grant stores, finds and burns.

The protocol logic stays authlib's; these subclasses only answer its
questions (where is this code, who is this user) and tighten two defaults:
PKCE with S256 for every client, and refresh tokens that rotate.
"""

from __future__ import annotations

import time

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
    scope_to_list,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core import grants as oidc_grants
from authlib.oidc.core.util import create_half_hash
from flask import current_app

from issuer import accounts
from issuer.audit import audit
from issuer.db import get_engine
from issuer.oauth import codes, refresh_tokens, resources
from issuer.oauth.codes import AuthorizationCode
from issuer.oauth.refresh_tokens import RefreshToken
from issuer.tokens import sign_jwt

#: Public clients authenticate with "none" (PKCE proves possession instead).
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


def _active_user(user_id: str) -> accounts.User | None:
    user = accounts.get_user(user_id)
    return None if user is None or user.disabled else user


def _wanted_resources(request) -> tuple[str, ...]:
    return resources.requested(request.payload.datalist.get("resource", []))


class ResourceGrantMixin:
    """RFC 8707 at the token endpoint: each grant mints for the one audience it covers."""

    def granted_resources(self) -> tuple[str, ...]:
        """What the user (or, for a service, the registration) granted."""
        raise NotImplementedError

    def generate_token(
        self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True
    ) -> dict:
        request = self.request
        request.audience = resources.audience(
            request.client.audiences, self.granted_resources(), _wanted_resources(request)
        )
        return self.server.token_generator.generate(
            grant_type or self.GRANT_TYPE,
            request.client,
            user=user,
            scope=scope,
            expires_in=expires_in,
            include_refresh_token=include_refresh_token,
            audience=request.audience,
        )


class ResourceIndicators:
    """RFC 8707 at `/authorize`: every `resource` asked for must be one the client
    may obtain; the user consents to them and the code remembers them."""

    def __call__(self, grant) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.validate)

    @staticmethod
    def validate(grant, redirect_uri: str) -> None:
        request = grant.request
        request.resources = resources.authorize(
            request.client.audiences, _wanted_resources(request)
        )


class AuthorizationCodeGrant(ResourceGrantMixin, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def granted_resources(self) -> tuple[str, ...]:
        return resources.split(self.request.authorization_code.resources)

    @staticmethod
    def validate_authorization_redirect_uri(request, client) -> str:
        """Exact match against the registered URIs, and no default: a request
        must say where it wants the code."""
        redirect_uri = request.payload.redirect_uri
        if not redirect_uri:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        if not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("The 'redirect_uri' is not registered for this client.")
        return redirect_uri

    def save_authorization_code(self, code: str, request) -> None:
        data = request.payload.data
        codes.save(
            get_engine(),
            code,
            AuthorizationCode(
                client_id=request.client.get_client_id(),
                user_id=request.user.id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce"),
                auth_time=accounts.authenticated_at() or int(time.time()),
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                family_id=codes.new_family_id(),
                resources=resources.join(request.resources),
                amr=" ".join(accounts.authentication_methods()),
            ),
        )

    def query_authorization_code(self, code: str, client) -> AuthorizationCode | None:
        """Burn the code as it is read; a replay revokes what the code issued."""
        engine = get_engine()
        redemption = codes.redeem(engine, code, client.get_client_id())
        if redemption.replayed_family is not None:
            revoked = refresh_tokens.revoke_family(engine, redemption.replayed_family)
            audit(
                "oauth.code_reuse",
                client_id=client.get_client_id(),
                family=redemption.replayed_family,
                refresh_tokens_revoked=revoked,
            )
        return redemption.code

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: `query_authorization_code` marked the code used, and
        the used row must stay so that a replay can be recognised."""

    def authenticate_user(self, authorization_code: AuthorizationCode):
        return _active_user(authorization_code.user_id)


class RefreshTokenGrant(ResourceGrantMixin, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def granted_resources(self) -> tuple[str, ...]:
        return resources.split(self.request.refresh_token.resources)

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        """Rotate as we read: the presented token is spent whatever happens next,
        except when the request cannot succeed: more scope than it carries, a
        resource it does not cover, an audience the client lost. Those are checked
        first, so that a refusal does not cost the client its token."""
        engine = get_engine()
        client = self.request.client
        client_id = client.get_client_id()
        live = refresh_tokens.find_live(engine, refresh_token)
        if live is not None and live.check_client(client):
            requested = self.request.payload.scope
            if requested and not set(scope_to_list(requested)) <= set(scope_to_list(live.scope)):
                raise InvalidScopeError()
            resources.audience(
                client.audiences, resources.split(live.resources), _wanted_resources(self.request)
            )
        config = current_app.config["ISSUER"]
        presentation = refresh_tokens.rotate(
            engine,
            refresh_token,
            client_id,
            ttl=config.refresh_token_ttl,
            reuse_interval=config.refresh_reuse_interval,
            scope=self.request.payload.scope or None,
        )
        if presentation.replayed_family is not None:
            audit(
                "oauth.refresh_reuse",
                client_id=client_id,
                family=presentation.replayed_family,
            )
        if presentation.retried and presentation.token is not None:
            audit("oauth.refresh_retried", client_id=client_id, family=presentation.token.family_id)
        self.request.successor = presentation.successor
        return presentation.token

    def generate_token(self, *args, **kwargs) -> dict:
        """The successor `authenticate_refresh_token` stored with the rotation (or
        handed out again), in place of a fresh random one."""
        token = super().generate_token(*args, **kwargs)
        token["refresh_token"] = self.request.successor
        return token

    def authenticate_user(self, refresh_token: RefreshToken):
        user = _active_user(refresh_token.user_id)
        if user is None:
            raise InvalidGrantError("The user of this refresh token is gone or disabled.")
        return user

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Nothing to do: `authenticate_refresh_token` already rotated it."""


class ClientCredentialsGrant(ResourceGrantMixin, grants.ClientCredentialsGrant):
    """Service accounts: the token's subject is the client itself (see `service_subject`)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

    def granted_resources(self) -> tuple[str, ...]:
        return self.request.client.audiences


class S256CodeChallenge(CodeChallenge):
    """PKCE for every client, S256 only: `plain` protects nothing once the
    authorization request leaks, and an absent method would mean `plain`."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def validate_code_challenge(self, grant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class OpenIDCode(oidc_grants.OpenIDCode):
    """ID tokens for the code flow, signed by the key ring's active key."""

    def exists_nonce(self, nonce: str, request) -> bool:
        return codes.nonce_seen(get_engine(), request.payload.client_id, nonce)

    def generate_user_info(self, user, scope: str) -> UserInfo:
        return UserInfo(sub=user.id, email=user.email, email_verified=user.email_verified).filter(
            scope
        )

    def encode_id_token(self, token: dict, request) -> str:
        """authlib's claims (nonce, auth_time, at_hash), signed by `sign_jwt`
        so that ID tokens and access tokens share one signing path."""
        config = current_app.config["ISSUER"]
        now = int(time.time())
        claims = {
            "iss": config.issuer_url,
            "aud": request.client.get_client_id(),
            "iat": now,
            "exp": now + config.access_token_ttl,
            **self.get_authorization_code_claims(request.authorization_code),
            "at_hash": create_half_hash(token["access_token"], "ES256").decode(),
            **self.generate_user_info(request.user, token["scope"]),
        }
        if request.authorization_code.amr:
            claims["amr"] = request.authorization_code.amr.split()
        return sign_jwt(current_app.extensions["keyring"], claims)
