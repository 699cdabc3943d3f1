"""Bearer access tokens presented back to us (/userinfo), checked against our own ring."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oidc.core import UserInfo

from issuer import accounts
from issuer.config import Config
from issuer.oauth.endpoints import PublishedKeys


class AccessTokenValidator(JWTBearerTokenValidator):
    """RFC 9068 validation (signature, typ, iss, aud, exp) with the published JWKS."""

    def __init__(self, config: Config, audience: str, published_keys: PublishedKeys) -> None:
        super().__init__(issuer=config.issuer_url, resource_server=audience)
        self.published_keys = published_keys

    def get_jwks(self):
        return self.published_keys()

    def validate_token(self, token, scopes, request, **kwargs) -> None:
        # RFC 9068 (via RFC 8693): `scope` is a space-separated string; authlib
        # calls .strip() on whatever it is, so another type would be a 500.
        if not isinstance(token.get("scope", ""), str):
            raise InvalidTokenError(description="The token's scope is not a string.")
        super().validate_token(token, scopes, request, **kwargs)


def resource_protector(config: Config, audience: str, keys: PublishedKeys) -> ResourceProtector:
    protector = ResourceProtector()
    protector.register_token_validator(AccessTokenValidator(config, audience, keys))
    return protector


def user_info(token: dict) -> dict:
    """The claims about the token's user that its scope releases, plus custom claims."""
    sub = token["sub"]
    # Only a string can name a user, and PostgreSQL text cannot even hold a NUL.
    user = accounts.get_user(sub) if isinstance(sub, str) and "\0" not in sub else None
    if user is None or user.disabled:
        raise InvalidTokenError(description="The user of this token is gone or disabled.")
    scope = token.get("scope", "")
    return {
        **user.claims,
        **UserInfo(sub=user.id, email=user.email, email_verified=user.email_verified).filter(scope),
    }
