"""The issuer's versioned schema: from empty, from release 0.1, and in step with the models."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import inspect, select, text

import servicedb
from issuer import create_app, db, migrations
from issuer.accounts import users
from issuer.accounts.models import login_sessions
from issuer.config import Config
from issuer.keys import KeyRing
from issuer.oauth import clients, refresh_tokens
from issuer.oauth.refresh_tokens import refresh_tokens_table
from tests.issuer.oauth_flows import basic

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "release-0.1"


def restore_release_0_1(path: Path) -> str:
    """A SQLite database holding what release 0.1 left behind; returns its URL."""
    con = sqlite3.connect(path)
    con.executescript((FIXTURE / "issuer.sql").read_text())
    con.close()
    return f"sqlite:///{path}"


def test_models_and_migrations_agree(make_issuer_app: Callable[..., Flask]) -> None:
    """What the code declares is what the migrations build (on both backends)."""
    engine = make_issuer_app().extensions["db"]
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE})
        assert compare_metadata(context, db.metadata) == []
        assert migrations.current(conn) == migrations.head()


def test_a_second_start_changes_nothing(make_issuer_app: Callable[..., Flask]) -> None:
    engine = make_issuer_app().extensions["db"]
    with engine.connect() as conn:
        before = set(inspect(conn).get_table_names())
    assert migrations.upgrade(engine) == migrations.head()
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == before


def test_release_0_1_database_is_adopted_with_its_data(
    tmp_path: Path, issuer_config: Config
) -> None:
    """Users, clients, refresh tokens and sessions made by release 0.1 keep working."""
    url = restore_release_0_1(tmp_path / "old.sqlite3")
    KeyRing(issuer_config.keys_dir).init()
    app = create_app(Config(**{**issuer_config.__dict__, "database_url": url}))
    app.config["TESTING"] = True
    engine = app.extensions["db"]
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
        assert conn.execute(select(login_sessions.c.user_id)).scalar_one()
    alice = users.authenticate(engine, "alice@example.com", "alice-fixture-password").user
    assert alice is not None and alice.claims == {"tenant": "acme"}
    # Release 0.1 never proved an address: confirmed at the next sign-in to an app.
    assert alice.email_verified is False
    assert users.find_user(engine, "bob@example.com").disabled
    assert {c.client_id for c in clients.all_clients(engine)} == {
        "todo-app",
        "spa-public",
        "worker",
    }

    browser = app.test_client()
    response = browser.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "alice-live-refresh-token-fixture"},
        headers=basic("todo-app", "todo-app-fixture-secret"),
    )
    assert response.status_code == 200, response.text
    assert response.json["refresh_token"]
    # Rotation and reuse detection still hold for the old rows.
    replay = browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "alice-rotated-refresh-token-fixture",
        },
        headers=basic("todo-app", "todo-app-fixture-secret"),
    )
    assert replay.status_code == 400
    assert refresh_tokens.find_live(engine, "alice-rotated-successor-fixture") is None
    service = browser.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic("worker", "worker-fixture-secret"),
    )
    assert service.status_code == 200, service.text
    with engine.connect() as conn:
        families = conn.execute(select(refresh_tokens_table.c.family_id).distinct()).scalars()
        assert set(families) == {"fam-alice", "fam-alice2"}


def test_postgresql_database_without_a_version_table_is_adopted(issuer_pg_url: str) -> None:
    """Release 0.1 on PostgreSQL: its tables, no version table."""
    engine = servicedb.engine_for(issuer_pg_url)
    try:
        db.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
        migrations.upgrade(engine, migrations.BASELINE)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))
        with engine.begin() as conn:  # as release 0.1 wrote its users
            conn.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, claims, disabled, created_at)"
                    " VALUES ('c', 'carol@example.com', 'x', '{}', false, now())"
                )
            )
        assert migrations.upgrade(engine) is None
        with engine.connect() as conn:
            assert migrations.current(conn) == migrations.head()
        assert users.find_user(engine, "carol@example.com") is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", ["upgrade", "status"])
def test_db_commands_report_the_revision(oauth_app: Flask, command: str) -> None:
    result = oauth_app.test_cli_runner().invoke(args=["db", command])
    assert result.exit_code == 0, result.output
    assert migrations.head() in result.output


def test_a_stored_role_claim_becomes_app_role(tmp_path: Path) -> None:
    """Revision 0003: `role` is the issuer's (it names a Postgres role on Neon's Data
    API); a user's stored custom claim of that name is kept as `app_role`."""
    engine = servicedb.engine_for(f"sqlite:///{tmp_path / 'issuer.sqlite3'}")
    try:
        migrations.upgrade(engine, "0002")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into users (id, email, password_hash, claims, disabled, created_at)"
                    " values ('u1', 'a@example.com', 'x', :claims, false, '2026-01-01')"
                ),
                {"claims": '{"role": "admin", "tenant": "acme"}'},
            )
        migrations.upgrade(engine)
        assert users.get_user(engine, "u1").claims == {"app_role": "admin", "tenant": "acme"}
    finally:
        engine.dispose()
