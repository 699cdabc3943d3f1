"""The token issuer: key ring, JWKS, OAuth 2 / OpenID Connect endpoints, users."""

from __future__ import annotations

from flask import Flask

from issuer.config import Config


def create_app(config: Config | None = None) -> Flask:
    """Application factory: one app per config, blueprints per concern."""
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config["ISSUER"] = config
    return app
