"""What a user statement may not do, whatever SQL it sends."""

from __future__ import annotations

import psycopg
import pytest

USER_ROLES = ["authenticated", "anonymous"]


def denied(conn: psycopg.Connection, statement: str, params: list | None = None) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement, params)


@pytest.mark.parametrize("role", USER_ROLES)
@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM auth_private.session_keys",
        "SELECT auth_private.install_session_key('mine', '\\x00'::bytea)",
        "SELECT auth_private.drop_session_key('mine')",
        "SELECT auth_private.base64url_decode('AA')",
        "SELECT auth_private.base64url_encode('\\x00'::bytea)",
        "SELECT auth_private.session_token_header('mine')",
        "SELECT auth_private.verified_claims('a.b.c')",
        "SELECT auth_private.session_claims('a.b.c')",
        "SELECT auth_private.kept_claims('a.b.c')",
        "SELECT * FROM auth_private.verified_sessions",
        'UPDATE auth_private.verified_sessions SET claims = \'{"sub": "victim"}\'',
        "INSERT INTO auth_private.verified_sessions VALUES (1, 't', 'k', '', '{}', NULL, NULL)",
        "DELETE FROM auth_private.verified_sessions",
    ],
)
def test_user_roles_cannot_touch_auth_private(connect, role, statement) -> None:
    denied(connect(role), statement)


@pytest.mark.parametrize("role", USER_ROLES)
def test_user_roles_cannot_see_the_secret_through_catalogs(connect, session_key, role) -> None:
    conn = connect(role)
    denied(
        conn, "SELECT pg_read_file('base/' || pg_relation_filepath('auth_private.session_keys'))"
    )
    stats = conn.execute(
        "SELECT count(*) FROM pg_stats WHERE schemaname = 'auth_private'"
    ).fetchone()[0]
    assert stats == 0


@pytest.mark.parametrize("role", USER_ROLES)
@pytest.mark.parametrize(
    "statement",
    [
        "SET ROLE neondb_owner",
        "SET ROLE postgres",
        "SET ROLE pg_read_all_data",
        "SET SESSION AUTHORIZATION neondb_owner",
        "CREATE TABLE public.mine (x int)",
        "CREATE TEMP TABLE mine (x int)",
        "CREATE SCHEMA mine",
        "CREATE FUNCTION public.user_id() RETURNS text LANGUAGE sql RETURN 'victim'",
        "CREATE OR REPLACE FUNCTION auth.user_id() RETURNS text LANGUAGE sql RETURN 'victim'",
        "ALTER TABLE todos DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE todos NO FORCE ROW LEVEL SECURITY",
        'DROP POLICY "Individuals can view their own todos." ON todos',
        "CREATE POLICY mine ON todos USING (true)",
        "TRUNCATE todos",
        "SELECT setval('todos_id_seq', 1)",
        "ALTER ROLE authenticated BYPASSRLS",
        "ALTER DATABASE neondb SET search_path = public",
        "GRANT neondb_owner TO authenticated",
    ],
)
def test_user_roles_have_nowhere_to_escape(connect, role, statement) -> None:
    denied(connect(role), statement)


@pytest.mark.parametrize(("role", "other"), [USER_ROLES, USER_ROLES[::-1]])
def test_user_roles_cannot_become_each_other(connect, role, other) -> None:
    denied(connect(role), f"SET ROLE {other}")


@pytest.mark.parametrize("role", USER_ROLES)
def test_reset_role_stays_where_it_is(connect, role) -> None:
    conn = connect(role)
    conn.execute("RESET ROLE")
    conn.execute("SET ROLE NONE")
    conn.execute("RESET SESSION AUTHORIZATION")
    users = conn.execute("SELECT current_user, session_user").fetchone()
    assert users == (role, role)


def test_public_has_neither_temp_nor_create(connect) -> None:
    """A role added later (not only ours) inherits nothing from PUBLIC to plant objects with."""
    acl = (
        connect("postgres")
        .execute(
            "SELECT has_database_privilege('public', 'neondb', 'TEMP'),"
            " has_schema_privilege('public', 'public', 'CREATE')"
        )
        .fetchone()
    )
    assert acl == (False, False)
