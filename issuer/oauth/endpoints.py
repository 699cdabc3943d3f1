"""authlib endpoints beyond the grants: revocation (RFC 7009) and RP-initiated logout."""

from __future__ import annotations

import json

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from authlib.oidc.rpinitiated import EndSessionRequest
from flask import current_app
from joserfc.jwk import KeySet

from issuer import accounts
from issuer.audit import audit
from issuer.db import get_engine
from issuer.oauth import refresh_tokens
from issuer.oauth.grants import TOKEN_AUTH_METHODS
from issuer.oauth.refresh_tokens import RefreshToken


class RevocationEndpoint(_RevocationEndpoint):
    """Revoking a refresh token revokes its whole family.

    Access tokens are self-contained JWTs that Neon verifies offline: they
    cannot be recalled, only outlived (they last `access_token_ttl`). Per
    RFC 7009 section 2.2 an unknown or unrevocable token still gets a 200.
    """

    CLIENT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> RefreshToken | None:
        if token_type_hint == "access_token":  # noqa: S105 (a hint name, not a secret)
            return None
        # A token rotated a moment ago (its answer lost) still reaches a live
        # successor through the reuse window: revoking it revokes the family.
        engine = get_engine()
        return refresh_tokens.find_live(engine, token_string) or refresh_tokens.find_rotated(
            engine, token_string
        )

    def revoke_token(self, token: RefreshToken, request) -> None:
        revoked = refresh_tokens.revoke_family(get_engine(), token.family_id)
        audit(
            "oauth.revoke",
            client_id=token.client_id,
            sub=token.user_id,
            family=token.family_id,
            refresh_tokens_revoked=revoked,
        )


class PublishedKeys:
    """The ring's public JWKS as a joserfc KeySet, rebuilt only when the ring changes."""

    def __init__(self) -> None:
        self._etag: str | None = None
        self._keys: KeySet | None = None

    def __call__(self) -> KeySet:
        jwks = current_app.extensions["keyring"].jwks()
        if jwks.etag != self._etag:
            self._keys = KeySet.import_key_set(json.loads(jwks.body))
            self._etag = jwks.etag
        return self._keys


class EndSessionEndpoint(_EndSessionEndpoint):
    """Logout: the hint must be an ID token we signed for a registered client;
    redirects only to a `post_logout_redirect_uri` registered for that client."""

    def validate_request(self, request) -> EndSessionRequest:
        """authlib's checks, and that the hint is an ID token: our access tokens are
        signed by the same keys, and a resource server holding one must not be able to
        log its user out without asking."""
        end_session = super().validate_request(request)
        claims = end_session.id_token_claims
        if claims is not None and (
            "scope" in claims or "client_id" in claims or not self._names_a_client(claims)
        ):
            raise InvalidRequestError("The 'id_token_hint' is not an ID token.")
        return end_session

    def _names_a_client(self, claims: dict) -> bool:
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        return (
            isinstance(audiences, list)
            and len(audiences) == 1
            and isinstance(audiences[0], str)
            and self.server.query_client(audiences[0]) is not None
        )

    def get_server_jwks(self) -> KeySet:
        return self.server.published_keys()

    def get_algorithms(self) -> list[str]:
        return ["ES256"]

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        """Ends the login this request sees; with none, the session is not touched."""
        user = accounts.current_user()
        if user is not None:
            accounts.logout_user()
        client = end_session_request.client
        audit(
            "oauth.logout",
            sub=None if user is None else user.id,
            client_id=None if client is None else client.get_client_id(),
            redirected=end_session_request.redirect_uri is not None,
        )
