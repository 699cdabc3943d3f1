"""Storage: URL handling, SQLite settings, table creation on both backends."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from issuer import create_app, db
from issuer.config import Config


def test_postgresql_urls_use_psycopg3() -> None:
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        url = db.normalize_url(f"{scheme}://u@db.example/issuer")
        assert url.drivername == "postgresql+psycopg"
        assert (url.username, url.host, url.database) == ("u", "db.example", "issuer")


@pytest.mark.parametrize("url", ["mysql://u@h/db", "oracle://u@h/db", "sqlite+pysqlcipher:///x"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        db.engine_for(url)


def test_sqlite_file_gets_its_directory_and_safe_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "issuer.sqlite3"
    engine = db.engine_for(f"sqlite:///{path}")
    with engine.connect() as conn:
        pragmas = {
            name: conn.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        }
    assert path.exists()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": db.SQLITE_BUSY_TIMEOUT_MS,
        "foreign_keys": 1,
    }


def test_default_url_is_a_sqlite_file_under_data() -> None:
    assert Config().database_url == "sqlite:///.data/issuer.sqlite3"
    assert db.normalize_url(Config().database_url).database == ".data/issuer.sqlite3"


def test_create_app_creates_the_tables(backend_config: Config) -> None:
    app = create_app(backend_config)
    engine = app.extensions["db"]
    tables = set(inspect(engine).get_table_names())
    assert {"users", "login_sessions", "login_failures"} <= tables
    db.create_all(engine)  # a second start changes nothing and fails nothing
    assert set(inspect(engine).get_table_names()) == tables
    engine.dispose()


def test_concurrent_first_starts_create_the_schema_once(backend_config: Config) -> None:
    """Several gunicorn workers opening a fresh database at the same moment."""
    engines = [db.engine_for(backend_config.database_url) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start(engine) -> None:
        try:
            barrier.wait(timeout=10)
            db.create_all(engine)
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


def test_foreign_keys_are_enforced(backend_config: Config) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from issuer.accounts.models import login_sessions

    engine = create_app(backend_config).extensions["db"]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(login_sessions).values(
                id="0" * 64, user_id="no-such-user", created_at=0, expires_at=1
            )
        )
    engine.dispose()
