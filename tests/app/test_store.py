"""The app's own store: versioned, adopted from release 0.1, in step with its tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from app.logins import secret_digest
from app.store import MIGRATIONS, logins, metadata, oauth_states
from servicedb import engine_for

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "release-0.1" / "app.sql"


def test_a_new_store_is_migrated_and_matches_the_tables(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'app.sqlite3'}")
    try:
        assert MIGRATIONS.upgrade(engine) is None
        with engine.connect() as conn:
            assert MIGRATIONS.current(conn) == MIGRATIONS.head()
            context = MigrationContext.configure(
                conn, opts={"version_table": MIGRATIONS.version_table}
            )
            assert compare_metadata(context, metadata) == []
        assert MIGRATIONS.upgrade(engine) == MIGRATIONS.head(), "a second start changes nothing"
    finally:
        engine.dispose()


def test_a_release_0_1_store_is_adopted_with_its_logins(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    con = sqlite3.connect(path)
    con.executescript(FIXTURE.read_text())
    con.close()
    engine = engine_for(f"sqlite:///{path}")
    try:
        assert MIGRATIONS.upgrade(engine) is None
        with engine.connect() as conn:
            assert MIGRATIONS.current(conn) == MIGRATIONS.head()
            row = conn.execute(
                select(logins).where(logins.c.id == secret_digest("app-login-fixture"))
            ).one()
            assert row.email == "alice@example.com"
            assert row.refresh_token == "alice-live-refresh-token-fixture"
            assert conn.execute(select(oauth_states.c.key)).scalar_one() == "_state_issuer_abc"
            assert {"app_logins", "app_oauth_states", MIGRATIONS.version_table} <= set(
                inspect(conn).get_table_names()
            )
    finally:
        engine.dispose()
