"""Storage: URL handling, SQLite settings, table creation on both backends."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import IntegrityError

import servicedb
from issuer import migrations
from issuer.accounts.models import login_sessions
from issuer.config import Config


def test_postgresql_urls_use_psycopg3() -> None:
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        url = servicedb.normalize_url(f"{scheme}://u@db.example/issuer")
        assert url.drivername == "postgresql+psycopg"
        assert (url.username, url.host, url.database) == ("u", "db.example", "issuer")


@pytest.mark.parametrize("url", ["mysql://u@h/db", "oracle://u@h/db", "sqlite+pysqlcipher:///x"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        servicedb.engine_for(url)


def test_unparseable_urls_are_refused_without_echoing_secrets() -> None:
    with pytest.raises(ValueError, match="not a URL") as caught:
        servicedb.engine_for("s3cret-password-in-a-broken-url")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        servicedb.engine_for("mysql://user:s3cret@db/issuer")
    assert "s3cret" not in str(caught.value)


def test_sqlite_file_gets_its_directory_and_safe_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "issuer.sqlite3"
    engine = servicedb.engine_for(f"sqlite:///{path}")
    with engine.connect() as conn:
        pragmas = {
            name: conn.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        }
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in path.parent.iterdir())
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": servicedb.engine.SQLITE_BUSY_TIMEOUT_MS,
        "foreign_keys": 1,
    }


def test_default_url_is_a_sqlite_file_under_data() -> None:
    assert Config().database_url == "sqlite:///.data/issuer.sqlite3"
    assert servicedb.normalize_url(Config().database_url).database == ".data/issuer.sqlite3"


def test_create_app_creates_the_tables(make_issuer_app: Callable[..., Flask]) -> None:
    engine = make_issuer_app().extensions["db"]
    tables = set(inspect(engine).get_table_names())
    assert {"users", "login_sessions", "login_failures"} <= tables
    migrations.upgrade(engine)  # a second start changes nothing and fails nothing
    assert set(inspect(engine).get_table_names()) == tables


def test_concurrent_first_starts_create_the_schema_once(backend_config: Config) -> None:
    """Several gunicorn workers opening a fresh database at the same moment."""
    engines = [servicedb.engine_for(backend_config.database_url) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start(engine) -> None:
        try:
            barrier.wait(timeout=10)
            migrations.upgrade(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert "users" in inspect(engines[0]).get_table_names()
    for engine in engines:
        engine.dispose()


def test_foreign_keys_are_enforced(make_issuer_app: Callable[..., Flask]) -> None:
    engine = make_issuer_app().extensions["db"]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(login_sessions).values(
                id="0" * 64, user_id="no-such-user", created_at=0, expires_at=1
            )
        )


def test_forked_worker_opens_its_own_connections(issuer_pg_url: str) -> None:
    """gunicorn --preload forks after the app (and its pool) exist."""
    engine = servicedb.engine_for(issuer_pg_url)
    pid_query = text("SELECT pg_backend_pid()")
    with engine.connect() as conn:
        parent_backend = conn.execute(pid_query).scalar_one()
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child() -> None:
        with engine.connect() as conn:
            results.put(conn.execute(pid_query).scalar_one())

    worker = context.Process(target=child)
    worker.start()
    worker.join(timeout=30)
    assert worker.exitcode == 0
    assert results.get(timeout=5) != parent_backend
    with engine.connect() as conn:  # the parent's pooled connection still works
        assert conn.execute(pid_query).scalar_one() == parent_backend
    engine.dispose()
