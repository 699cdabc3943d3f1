"""The issuer's storage: one SQLAlchemy Core engine, one shared `metadata`.

SQLite (a file under `.data/` by default) needs nothing to run; PostgreSQL
(`ISSUER_DATABASE_URL=postgresql://…`) lets several hosts share state. Every
module declares its tables on `metadata`; `issuer.migrations` holds the
versioned schema that start-up applies.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from pathlib import Path

from filelock import FileLock
from flask import Flask, current_app
from sqlalchemy import Engine, MetaData, create_engine, event, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

metadata = MetaData()


def secret_digest(secret: str) -> str:
    """How a high-entropy random secret (client secret, authorization code,
    refresh or login-session token) is stored: its SHA-256, so a leaked table
    yields nothing usable. A password KDF is for user passwords only: these
    secrets carry 256 random bits and sit on hot paths such as /token."""
    return hashlib.sha256(secret.encode()).hexdigest()


# Milliseconds a SQLite writer waits for another process's write lock
# (several gunicorn workers share one file) before giving up.
SQLITE_BUSY_TIMEOUT_MS = 5000

# Arbitrary constant naming the advisory lock that serialises `create_all`
# across processes starting at the same time on PostgreSQL.
_SCHEMA_LOCK_ID = 0x1550E5


def normalize_url(url: str | URL) -> URL:
    """Pin the drivers we ship: psycopg 3 for PostgreSQL, the stdlib for SQLite.

    Errors never repeat the URL: it may carry a password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "the database URL is not a URL: use sqlite:///PATH or postgresql://…"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: "
            "use sqlite:///PATH or postgresql://…"
        )
    return parsed


def engine_for(url: str | URL) -> Engine:
    """An engine for `url`, with the SQLite settings that make it safe to share."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=True)
        _forget_pool_after_fork(engine)
        return engine
    path = _sqlite_file(parsed)
    if path is None:
        # An in-memory database exists once per connection: keep exactly one.
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        # The file holds password hashes: private from the first byte (SQLite
        # gives its -wal and -shm files the database file's mode).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        engine = create_engine(parsed)
        _forget_pool_after_fork(engine)
    event.listen(engine, "connect", _configure_sqlite)
    return engine


def _forget_pool_after_fork(engine: Engine) -> None:
    """A forked worker (gunicorn --preload) must open its own connections,
    never reuse its parent's sockets; the parent keeps its pool untouched."""
    ref = weakref.ref(engine)

    def reset() -> None:
        child_engine = ref()
        if child_engine is not None:
            child_engine.dispose(close=False)

    os.register_at_fork(after_in_child=reset)


def _sqlite_file(url: URL) -> Path | None:
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        return None
    return Path(url.database)


def _configure_sqlite(dbapi_connection, _record) -> None:
    """WAL lets readers run beside the writer; foreign keys are off by default."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_all(engine: Engine, tables: MetaData) -> None:
    """Create missing tables, once even when several workers start together.

    Used by the todo app for its own tables; the issuer's are migrated.
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_ID)))
            tables.create_all(conn)
        return
    path = _sqlite_file(engine.url)
    if path is None:
        tables.create_all(engine)
        return
    with FileLock(f"{path}.schema.lock", timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
        tables.create_all(engine)


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
