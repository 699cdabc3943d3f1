"""The issuer's storage: one SQLAlchemy Core engine, one shared `metadata`.

SQLite (a file under `.data/` by default) needs nothing to run; PostgreSQL
(`ISSUER_DATABASE_URL=postgresql://…`) lets several hosts share state (see
`servicedb`). Every module declares its tables on `metadata`; `issuer.migrations`
holds the versioned schema that start-up applies.
"""

from __future__ import annotations

import hashlib

from flask import Flask, current_app
from sqlalchemy import Engine, MetaData

from servicedb import engine_for

metadata = MetaData()


def secret_digest(secret: str) -> str:
    """How a high-entropy random secret (client secret, authorization code,
    refresh or login-session token) is stored: its SHA-256, so a leaked table
    yields nothing usable. A password KDF is for user passwords only: these
    secrets carry 256 random bits and sit on hot paths such as /token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def init_app(app: Flask) -> Engine:
    """Open the configured database and keep its engine on the app.

    `create_app` migrates it last (`issuer.migrations.upgrade`).
    """
    engine = engine_for(app.config["ISSUER"].database_url)
    app.extensions["db"] = engine
    return engine


def get_engine() -> Engine:
    """The current app's engine (inside an app or request context)."""
    return current_app.extensions["db"]
