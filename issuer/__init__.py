"""The token issuer: key ring, JWKS, OAuth 2 / OpenID Connect endpoints, users."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from issuer import accounts, db, gc, headers, metrics, migrations, oauth, query_string
from issuer.audit import audit
from issuer.config import Config
from issuer.keys import KeyRing, RingExists, autorotation, jwks
from issuer.keys.cli import keys
from issuer.keys.database_store import DatabaseKeyStore, import_files
from issuer.keys.store import KeyStore
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
    app.extensions["keyring"] = keyring_for(config, app.extensions["db"])
    jwks.init_app(app)
    app.cli.add_command(keys)
    app.cli.add_command(token)
    oauth.init_app(app)
    app.cli.add_command(db_cli)
    app.cli.add_command(gc.gc_command)
    metrics.init_app(app)
    if config.trusted_proxies:
        # Throttling keys on the client address: behind a proxy that is the last
        # X-Forwarded-For entries the trusted proxies appended, never the ones a
        # client can write itself. The scheme likewise: behind a TLS proxy the
        # request reaches us over http, and authlib refuses OAuth over http (every
        # /token would be `insecure_transport`). Outermost, so that the endpoints
        # served in front of Flask (JWKS, /token, /revoke) see the same request.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=config.trusted_proxies, x_proto=config.trusted_proxies
        )
    migrations.upgrade(app.extensions["db"])
    _import_file_ring(app)
    return app


def keyring_for(config: Config, engine: Engine) -> KeyRing:
    """The ring in `ISSUER_KEYS_STORE`: files in ISSUER_KEYS_DIR, or the database."""
    store = None
    if config.keys_store == "database":
        assert config.keys_master_key is not None  # Config.check
        store = DatabaseKeyStore(
            engine, [config.keys_master_key, *config.keys_master_key_fallbacks]
        )
    return KeyRing(
        config.keys_dir,
        passphrase=config.keys_passphrase,
        static_jwks_dir=config.jwks_static_dir,
        store=store,
    )


def _import_file_ring(app: Flask) -> None:
    """First start on the database ring: a file ring in ISSUER_KEYS_DIR moves in with
    every kid (the files are left as a backup); the race between issuers starting
    together is decided by the database (one imports, the others find it there)."""
    config: Config = app.config["ISSUER"]
    ring: KeyRing = app.extensions["keyring"]
    files = KeyStore(config.keys_dir, config.keys_passphrase)
    if config.keys_store != "database" or ring.store.exists() or not files.exists():
        return
    try:
        kids = import_files(files, ring.store)
    except RingExists:
        return
    audit("keys.import", kids=kids, source=str(config.keys_dir))


def start_scheduler(app: Flask) -> Scheduler:
    """The timer of a serving process (garbage collection, key rotation); every process of the
    fleet runs one, and the database lets one of them run each period."""
    scheduler = Scheduler(app.extensions["db"], [*gc.jobs(app), *autorotation.jobs(app)])
    scheduler.start()
    return scheduler
