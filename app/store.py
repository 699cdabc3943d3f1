"""The app's own store: who is logged in, with which tokens, and the short-lived
OAuth state of logins in progress.

Nothing here is todo data (that lives in the Neon database, behind RLS: see
`neon.py`). It is kept server-side so that the browser's cookie carries an opaque
id only: tokens, the PKCE verifier and the nonce never reach the browser. SQLite
by default; several hosts can share a PostgreSQL database (`APP_STORE_URL`). Its
schema is versioned (`app/migrations`) and migrated when the app starts.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text

from servicedb import Migrations, engine_for

metadata = MetaData()

# One row per logged-in browser session, keyed by the SHA-256 of the cookie's
# random token, so that a leaked table cannot be replayed as cookies.
logins = Table(
    "app_logins",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("sub", Text, nullable=False),
    Column("email", Text),
    Column("name", Text),
    Column("access_token", Text, nullable=False),
    Column("refresh_token", Text),
    Column("id_token", Text),
    Column("access_expires_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

# authlib's state for a login in progress (state, nonce, PKCE verifier).
oauth_states = Table(
    "app_oauth_states",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

MIGRATIONS = Migrations(
    scripts=Path(__file__).parent / "migrations",
    metadata=metadata,
    version_table="app_schema_version",
    baseline="0001",
    adopt_if_present="app_logins",
)


def init_app(app: Flask, store_url: str) -> Engine:
    engine = engine_for(store_url)
    MIGRATIONS.upgrade(engine)
    app.extensions["app_store"] = engine
    return engine


def get_engine() -> Engine:
    return current_app.extensions["app_store"]
