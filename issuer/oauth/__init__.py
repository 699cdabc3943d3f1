"""OAuth 2 / OpenID Connect: clients, codes, refresh tokens, and the endpoints.

`init_app` wires authlib's AuthorizationServer and a ResourceProtector to the
app (as `app.extensions["oauth"]` and `["oauth_resource"]`), registers the
blueprint and the `clients` CLI group.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Connection, Engine

from issuer import headers
from issuer.accounts import events
from issuer.oauth import clients, form_post, refresh_tokens, resources
from issuer.oauth.clients_cli import clients_cli
from issuer.oauth.discovery import metadata_body
from issuer.oauth.server import AuthorizationServer
from issuer.oauth.userinfo import resource_protector
from issuer.oauth.views import authorization_redirects, bp


def _end_refresh_tokens(conn: Connection, user_id: str) -> None:
    """A new password (or a deleted account) ends every app's refresh-token family."""
    refresh_tokens.revoke_user(conn, user_id)


class AppAccess:
    """The account page's view of the apps that hold a user's refresh tokens."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def apps(self, user_id: str) -> list[events.AppAccess]:
        found = []
        for client_id, since in refresh_tokens.live_clients(self.engine, user_id).items():
            client = clients.load(self.engine, client_id)
            name = client.name if client is not None else client_id
            found.append(events.AppAccess(client_id, name, since))
        return sorted(found, key=lambda app: app.name.lower())

    def revoke(self, user_id: str, client_id: str) -> int:
        return refresh_tokens.revoke_client(self.engine, user_id, client_id)


def init_app(app: Flask) -> None:
    config = app.config["ISSUER"]
    try:
        resources.check_uri(config.database_audience)
    except ValueError as error:
        raise ValueError(f"ISSUER_DATABASE_AUDIENCE: {error}") from None
    if config.database_audience in (config.issuer_url, config.userinfo_audience):
        # Release 0.1 put ISSUER_URL in every token: a database told to expect it would
        # open for every sign-in token of every client.
        raise ValueError(
            "ISSUER_DATABASE_AUDIENCE must name the database, not the issuer "
            f"({config.database_audience}): tokens for sign-in only carry the issuer's"
        )
    server = AuthorizationServer(app)
    app.extensions["oauth"] = server
    # /userinfo is the issuer's own resource: tokens for no other resource open it.
    app.extensions["oauth_resource"] = resource_protector(
        config, config.userinfo_audience, server.published_keys
    )
    app.extensions["oauth_discovery"] = metadata_body(config)
    app.register_blueprint(bp)
    form_post.init_app(app)
    headers.add_continuation(app, authorization_redirects)
    app.cli.add_command(clients_cli)
    events.credentials_changed.connect(_end_refresh_tokens)
    app.extensions["app_access"] = AppAccess(app.extensions["db"])
