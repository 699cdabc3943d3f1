"""Versioned migrations of a service's own tables (Alembic), applied at start-up.

`Migrations.upgrade(engine)` brings a database to the newest revision, once even
when several workers start together: on PostgreSQL under an advisory lock in the
migration's own transaction, on SQLite under a file lock beside the database. A
database made before the service had migrations (its tables from `create_all`,
no version table) is adopted: stamped at the first revision, which is exactly what
that release created, then upgraded like any other.

Each service keeps its revisions in its own `migrations/` folder with a two-line
`env.py` calling `run_env()`, and its own version table, so that services can
share one PostgreSQL database.
"""

from __future__ import annotations

import functools
import zlib
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from alembic import command, context
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, Engine, MetaData, func, inspect, select

from servicedb.engine import sqlite_file

#: Seconds a starting process waits for another one's migration.
LOCK_TIMEOUT = 30.0


@dataclass(frozen=True)
class Migrations:
    """One service's revisions: where they are, which table records them, what to adopt."""

    scripts: Path
    metadata: MetaData
    version_table: str
    # The first revision, and a table whose presence without a version table says
    # the database was made before migrations (it is then stamped at `baseline`).
    baseline: str
    adopt_if_present: str

    @functools.cached_property
    def _directory(self) -> ScriptDirectory:
        return ScriptDirectory(str(self.scripts))

    def head(self) -> str:
        """The newest revision this release knows."""
        newest = self._directory.get_current_head()
        assert newest is not None
        return newest

    def current(self, conn: Connection) -> str | None:
        """The revision a database is at (None: empty, or made before migrations)."""
        migration = MigrationContext.configure(conn, opts={"version_table": self.version_table})
        return migration.get_current_revision()

    def upgrade(self, engine: Engine, revision: str = "head") -> str | None:
        """Migrate to `revision`; returns the revision the database was at before
        (None for an empty database and for one made before migrations)."""
        with self._file_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(self._lock_id)))
            before = self.current(conn)
            if before == self.head() and revision == "head":
                return before
            config = self._alembic_config(conn)
            if before is None and inspect(conn).has_table(self.adopt_if_present):
                command.stamp(config, self.baseline)
            command.upgrade(config, revision)
            return before

    @property
    def _lock_id(self) -> int:
        """One advisory lock per service (its version table's name), stable across runs."""
        return zlib.crc32(self.version_table.encode())

    def _alembic_config(self, conn: Connection) -> AlembicConfig:
        config = AlembicConfig()
        config.set_main_option("script_location", str(self.scripts))
        config.attributes.update(
            connection=conn, metadata=self.metadata, version_table=self.version_table
        )
        return config

    @staticmethod
    def _file_lock(engine: Engine) -> AbstractContextManager[object]:
        path = sqlite_file(engine.url)
        if path is None:
            return nullcontext()
        return FileLock(f"{path}.schema.lock", timeout=LOCK_TIMEOUT)


def run_env() -> None:
    """The body of every service's `migrations/env.py`: run on the connection and
    with the metadata and version table `Migrations.upgrade` passes in."""
    attributes = context.config.attributes
    context.configure(
        connection=attributes["connection"],
        target_metadata=attributes["metadata"],
        version_table=attributes["version_table"],
        # SQLite alters tables by copying them; Alembic's batch mode does that for us.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
