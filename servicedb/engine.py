"""An engine for a service's own SQL database: a SQLite file on one host, PostgreSQL
for many.

SQLite (a file, by default under the data directory) needs nothing to run, and
is set up to be shared by several worker processes; PostgreSQL
(`postgresql://…`) lets several hosts share state. The drivers are pinned (psycopg
3, the stdlib's sqlite3) and forked workers never reuse their parent's sockets.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

# Milliseconds a SQLite writer waits for another process's write lock
# (several gunicorn workers share one file) before giving up.
SQLITE_BUSY_TIMEOUT_MS = 5000


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
    path = sqlite_file(parsed)
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


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (None: in memory, or not SQLite)."""
    if url.get_backend_name() != "sqlite":
        return None
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
