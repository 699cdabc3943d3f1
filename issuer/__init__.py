"""The token issuer: key ring, JWKS, OAuth 2 / OpenID Connect endpoints, users."""

from __future__ import annotations

from flask import Flask

from issuer import accounts, db, gc, headers, metrics, migrations, oauth, query_string
from issuer.config import Config
from issuer.keys import KeyRing, autorotation, jwks
from issuer.keys.cli import keys
from issuer.mail import Mailer, SmtpServer, outbox
from issuer.migrations.cli import db_cli
from issuer.schedule import Scheduler
from issuer.tokens.cli import token


def create_app(config: Config | None = None) -> Flask:
    """Application factory: one app per config, blueprints per concern."""
    config = config or Config.from_env()
    config.check()
    app = Flask(__name__)
    app.config["ISSUER"] = config
    query_string.init_app(app)
    headers.init_app(app)
    db.init_app(app)
    app.extensions["mailer"] = Mailer(
        SmtpServer.from_url(config.smtp_url), config.mail_from, config.smtp_ca_file
    )
    outbox.init_app(app)
    accounts.init_app(app)
    app.extensions["keyring"] = KeyRing(
        config.keys_dir, passphrase=config.keys_passphrase, static_jwks_dir=config.jwks_static_dir
    )
    jwks.init_app(app)
    app.cli.add_command(keys)
    app.cli.add_command(token)
    oauth.init_app(app)
    app.cli.add_command(db_cli)
    app.cli.add_command(gc.gc_command)
    metrics.init_app(app)
    migrations.upgrade(app.extensions["db"])
    return app


def start_scheduler(app: Flask) -> Scheduler:
    """The timer of a serving process (garbage collection, key rotation); every process of the
    fleet runs one, and the database lets one of them run each period."""
    scheduler = Scheduler(app.extensions["db"], [*gc.jobs(app), *autorotation.jobs(app)])
    scheduler.start()
    return scheduler
