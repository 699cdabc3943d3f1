"""The migration: idempotent, the roles it leaves behind, and its command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from proxy.session import SessionKey
from stack import migrate, postgres

PREVIOUS_AUTH = Path(__file__).resolve().parent.parent / "fixtures" / "local-auth-1e97b45"

# Everything a migration decides, read from the catalogs (no OIDs, no xmin).
CATALOG_STATE = {
    "roles": """
        SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
               rolreplication, rolbypassrls
        FROM pg_roles WHERE rolname IN ('neondb_owner', 'authenticated', 'anonymous')
        ORDER BY rolname""",
    "database": """
        SELECT pg_get_userbyid(datdba), datacl::text[] FROM pg_database
        WHERE datname = current_database()""",
    "schemas": """
        SELECT nspname, pg_get_userbyid(nspowner), nspacl::text[] FROM pg_namespace
        WHERE nspname IN ('public', 'auth', 'auth_private') ORDER BY nspname""",
    "relations": """
        SELECT c.oid::regclass::text, c.relkind, pg_get_userbyid(c.relowner), c.relacl::text[],
               c.relrowsecurity, c.relforcerowsecurity
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'auth', 'auth_private') ORDER BY 1""",
    "indexes": """
        SELECT indexdef FROM pg_indexes
        WHERE schemaname IN ('public', 'auth_private') ORDER BY 1""",
    "policies": """
        SELECT policyname, cmd, roles::text[], qual, with_check FROM pg_policies
        WHERE tablename = 'todos' ORDER BY 1""",
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text[]
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('auth', 'auth_private') ORDER BY 1""",
    "default_privileges": """
        SELECT pg_get_userbyid(defaclrole), defaclobjtype, defaclacl::text[]
        FROM pg_default_acl ORDER BY 1, 2""",
}


def catalog_state(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CATALOG_STATE.items()}


def test_migrating_again_changes_nothing(pg_server, neon_db) -> None:
    before = catalog_state(neon_db.superuser_url)
    assert migrate.apply_local(pg_server) == neon_db
    assert migrate.apply_local(pg_server) == neon_db
    assert catalog_state(neon_db.superuser_url) == before
    assert len(before["policies"]) == 4
    assert before["relations"], "the snapshot must not be empty"


def test_migrating_repairs_a_drifted_role(pg_server, neon_db) -> None:
    with psycopg.connect(neon_db.superuser_url, autocommit=True) as conn:
        conn.execute("ALTER ROLE authenticated INHERIT BYPASSRLS")
        migrate.apply_local(pg_server)
        row = conn.execute(
            "SELECT rolinherit, rolbypassrls FROM pg_roles WHERE rolname = 'authenticated'"
        ).fetchone()
    assert row == (False, False)


@pytest.mark.parametrize("role", ["authenticated", "anonymous"])
def test_user_roles_are_powerless_logins(neon_db, role) -> None:
    with psycopg.connect(neon_db.superuser_url) as conn:
        attributes = conn.execute(
            """SELECT rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb,
                      rolreplication, rolbypassrls
               FROM pg_roles WHERE rolname = %s""",
            [role],
        ).fetchone()
        memberships = conn.execute(
            "SELECT count(*) FROM pg_auth_members WHERE member = %s::regrole", [role]
        ).fetchone()[0]
        # pg_shdepend records ownership in every database of the cluster.
        owned = conn.execute(
            "SELECT count(*) FROM pg_shdepend WHERE refobjid = %s::regrole AND deptype = 'o'",
            [role],
        ).fetchone()[0]
    assert attributes == (True, False, False, False, False, False, False)
    assert memberships == 0
    assert owned == 0


def test_the_owner_is_not_a_superuser_and_owns_the_schema(neon_db) -> None:
    with psycopg.connect(neon_db.superuser_url) as conn:
        row = conn.execute(
            """SELECT r.rolsuper, r.rolbypassrls, pg_get_userbyid(d.datdba),
                      pg_get_userbyid(c.relowner), pg_get_userbyid(p.proowner)
               FROM pg_roles r, pg_database d, pg_class c, pg_proc p
               WHERE r.rolname = 'neondb_owner' AND d.datname = 'neondb'
                 AND c.oid = 'public.todos'::regclass AND p.oid = 'auth.session()'::regprocedure"""
        ).fetchone()
    assert row == (False, False, "neondb_owner", "neondb_owner", "neondb_owner")


def test_neon_target_needs_pg_session_jwt(neon_db) -> None:
    with pytest.raises(migrate.MigrationError, match='"pg_session_jwt" is not available'):
        migrate.apply_neon(neon_db.owner_url)


def run_cli(*args: str, data_dir: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", "migrate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"DATA_DIR": data_dir},
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://root@localhost/db", "must start with postgresql://"),
        ("postgresql://u:s3cret@[::1", "cannot connect to the database"),
        ("postgresql://u:s3cret@127.0.0.1:1/neondb", "cannot connect to the database"),
        ("postgresql://u@/neondb?host=/nonexistent", "cannot connect to the database"),
    ],
)
def test_cli_reports_bad_targets_without_a_traceback(tmp_path, url, reason) -> None:
    result = run_cli("--database-url", url, data_dir=str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr


def test_cli_migrates_a_neon_target_or_says_why_not(neon_db, tmp_path) -> None:
    result = run_cli("--database-url", neon_db.owner_url, data_dir=str(tmp_path))
    assert result.returncode == 1
    assert "sql/neon/10_pg_session_jwt.sql" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_migrates_the_embedded_server_twice(tmp_path) -> None:
    data_dir = tmp_path / "data"
    try:
        first = run_cli(data_dir=str(data_dir))
        second = run_cli(data_dir=str(data_dir))
        server = postgres.running(data_dir / "pg")
        assert server is not None
        assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
        assert first.stdout.strip() == second.stdout.strip() == server.url("neondb_owner", "neondb")
    finally:
        postgres.stop(data_dir / "pg", mode="immediate")


def test_the_previous_releases_auth_schema_upgrades_under_a_live_session(
    tmp_path, monkeypatch
) -> None:
    """A database migrated by the previous release (whose auth.session() verified on
    every call) takes the current migration while a user's session is open: the
    session keeps its identity and its rows, and the next hand-off keeps its claims."""
    previous = tmp_path / "sql"
    shutil.copytree(migrate.SQL_DIR, previous)
    shutil.copy(PREVIOUS_AUTH / "20_auth.sql", previous / "local" / "20_auth.sql")
    data_dir = tmp_path / "pg"
    server = postgres.start(data_dir)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(migrate, "SQL_DIR", previous)
            db = migrate.apply_local(server)
        key = SessionKey.generate()
        key.install(db.owner_url)
        with psycopg.connect(db.role_url("authenticated"), autocommit=True) as user:
            token = key.token(
                {"sub": "alice", "exp": int(time.time()) + 600}, user.info.backend_pid
            )
            user.execute("SELECT auth.jwt_session_init(%s)", [token])
            user.execute("INSERT INTO todos (task) VALUES ('from the previous release')")
            with psycopg.connect(db.owner_url, autocommit=True) as owner:
                before = owner.execute(
                    "SELECT to_regclass('auth_private.verified_sessions')"
                ).fetchone()
            assert before == (None,)  # the previous release's schema, not this one's

            migrate.apply_local(server)

            assert user.execute("SELECT auth.user_id()").fetchone()[0] == "alice"
            assert user.execute("SELECT task FROM todos").fetchall() == [
                ("from the previous release",)
            ]
            user.execute("SELECT auth.jwt_session_init(%s)", [token])
            with psycopg.connect(db.owner_url, autocommit=True) as owner:
                kept = owner.execute(
                    "SELECT claims ->> 'sub' FROM auth_private.verified_sessions WHERE pid = %s",
                    [user.info.backend_pid],
                ).fetchone()
            assert kept == ("alice",)
    finally:
        postgres.stop(data_dir, mode="immediate")
