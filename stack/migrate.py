"""Apply `sql/` to the embedded server or to a Neon database, idempotently.

`sql/local/` runs only on the embedded server: the roles Neon would create and
the `auth` compat schema standing in for pg_session_jwt. `sql/neon/` runs only
on Neon (it installs the real extension). `sql/schema/` runs on both, as the
database owner, so the app sees the same tables, grants and policies
everywhere. Every file is written to be re-run: a second migration changes
nothing and fails nothing. Each file runs in one transaction, under an advisory
lock, so a failure leaves no half-applied file and two migrations never race.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from stack import postgres

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
DATABASE = "neondb"
OWNER = "neondb_owner"
CONNECT_TIMEOUT_S = 10
# Serialises concurrent migrations of one database (any constant both sides agree on).
LOCK_ID = 0x4E454F4E


class MigrationError(Exception):
    """The target cannot be migrated: bad URL, unreachable server, SQL refused."""


@dataclass(frozen=True)
class LocalDatabase:
    """`neondb` on an embedded server, with the URLs each role connects with."""

    server: postgres.Server
    name: str = DATABASE

    @property
    def superuser_url(self) -> str:
        return self.server.url(postgres.SUPERUSER, self.name)

    @property
    def owner_url(self) -> str:
        """The `DATABASE_URL` of the local stack: migrations and admin tasks."""
        return self.server.url(OWNER, self.name)

    def role_url(self, role: str) -> str:
        """A direct libpq URL for `role` (`authenticated`, `anonymous`) on `neondb`."""
        return self.server.url(role, self.name)


#: pg_session_jwt as Neon's compute images install it (neondatabase/neon,
#: compute/compute-node.Dockerfile); the local `auth` schema offers its API.
PG_SESSION_JWT = "0.3.1"
#: What LOCAL_PG_SESSION_JWT may ask for instead: 0.4.0 adds auth.jwt() and auth.uid().
NEWER = {"0.4.0": "local/30_auth_0_4.sql"}


def apply_local(server: postgres.Server, pg_session_jwt: str | None = None) -> LocalDatabase:
    """Create roles, `neondb`, the local `auth` schema and the app schema.

    `pg_session_jwt` (default LOCAL_PG_SESSION_JWT, else 0.3.1, Neon's) is the
    version whose functions the local `auth` schema offers: functions of later
    versions are dropped unless asked for, so that a policy that would fail on
    Neon fails here first.
    """
    version = pg_session_jwt or os.environ.get("LOCAL_PG_SESSION_JWT") or PG_SESSION_JWT
    if version != PG_SESSION_JWT and version not in NEWER:
        raise MigrationError(
            f"LOCAL_PG_SESSION_JWT must be {PG_SESSION_JWT} or {', '.join(NEWER)}, got {version!r}"
        )
    db = LocalDatabase(server)
    _run_files(server.url(), "local/10_roles.sql")
    _create_database(server.url(), db.name, OWNER)
    newer = [NEWER[version]] if version in NEWER else []
    if not newer:
        _drop_newer_functions(db.owner_url)
    _run_files(db.owner_url, "local/20_auth.sql", *newer, *_schema_files())
    return db


def _drop_newer_functions(owner_url: str) -> None:
    """Remove auth.jwt() and auth.uid() (pg_session_jwt 0.4.0) from an earlier migration;
    a policy that uses them makes this fail with Postgres' own words."""
    with _connect(owner_url) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
                conn.execute("DROP FUNCTION IF EXISTS auth.jwt(), auth.uid()")
        except psycopg.Error as exc:
            raise MigrationError(
                f"auth.jwt() and auth.uid() exist only from pg_session_jwt 0.4.0, which Neon does "
                f"not install: {_first_line(exc)} (or set LOCAL_PG_SESSION_JWT=0.4.0)"
            ) from None


def apply_neon(database_url: str) -> None:
    """Migrate a Neon database as its owner: pg_session_jwt, then the app schema."""
    _check_url(database_url)
    _run_files(database_url, "neon/10_pg_session_jwt.sql", *_schema_files())


def _schema_files() -> list[str]:
    return sorted(str(p.relative_to(SQL_DIR)) for p in (SQL_DIR / "schema").glob("*.sql"))


def _check_url(url: str) -> None:
    if not url.startswith(("postgresql://", "postgres://")):
        raise MigrationError("the database URL must start with postgresql:// or postgres://")


def _connect(url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        # libpq quotes an unparsable URL verbatim: never echo a password.
        reason = _first_line(exc).replace(url, "<database url>")
        raise MigrationError(f"cannot connect to the database: {reason}") from None


def _run_files(url: str, *names: str) -> None:
    with _connect(url) as conn:
        for name in names:
            text = (SQL_DIR / name).read_text()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
                    conn.execute(text.encode())  # bytes: sent as written, several statements
            except psycopg.Error as exc:
                raise MigrationError(f"sql/{name}: {_first_line(exc)}") from None


def _create_database(superuser_url: str, name: str, owner: str) -> None:
    """CREATE DATABASE cannot run in a transaction or a DO block, hence Python."""
    with _connect(superuser_url) as conn:
        if conn.execute("SELECT FROM pg_database WHERE datname = %s", [name]).fetchone():
            return
        create = sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner)
        )
        try:
            conn.execute(create)
        except psycopg.errors.DuplicateDatabase:
            return  # a concurrent migration created it first
        except psycopg.Error as exc:
            raise MigrationError(f"cannot create database {name}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
