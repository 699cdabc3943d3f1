"""The versioned schema of the issuer's own tables (Alembic), applied at start-up.

`upgrade(engine)` brings a database to the newest revision, once even when
several workers start together: the PostgreSQL migration runs under an
advisory lock in its own transaction, the SQLite one under a file lock. A
database made by release 0.1 (tables from `create_all`, no version table) is
adopted: stamped at revision 0001, which is exactly what that release created,
then upgraded like any other.

Operators can run the same thing by hand: `python -m issuer db upgrade`.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, Engine, func, inspect, select

#: Alembic's bookkeeping table; named for the issuer so that the todo app's own
#: migrations can share a PostgreSQL database with it.
VERSION_TABLE = "issuer_schema_version"
#: What release 0.1's `create_all` made.
BASELINE = "0001"
#: A table every release has had: its presence without a version table means release 0.1.
_RELEASE_0_1_TABLE = "users"
# Arbitrary constant naming the advisory lock that serialises migrations on PostgreSQL.
_LOCK_ID = 0x1550E5
LOCK_TIMEOUT = 30.0


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(Path(__file__).parent))


def head() -> str:
    """The newest revision this release knows."""
    newest = _scripts().get_current_head()
    assert newest is not None
    return newest


def current(conn: Connection) -> str | None:
    """The revision a database is at (None: empty, or made by release 0.1)."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _alembic_config(conn: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = conn
    return config


def _file_lock(engine: Engine) -> AbstractContextManager[object]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        return nullcontext()
    return FileLock(f"{database}.schema.lock", timeout=LOCK_TIMEOUT)


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate to `revision`; returns the revision the database was at before
    (None for an empty database and for one made by release 0.1)."""
    with _file_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_LOCK_ID)))
        before = current(conn)
        if before == head() and revision == "head":
            return before
        config = _alembic_config(conn)
        if before is None and inspect(conn).has_table(_RELEASE_0_1_TABLE):
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
        return before
