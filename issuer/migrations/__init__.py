"""The versioned schema of the issuer's own tables (see `servicedb.migrations`).

Every issuer process migrates its database when it starts; `python -m issuer db
upgrade|status` does it by hand. A database made by release 0.1 (no version
table) is adopted at revision 0001, which is exactly what that release created.
"""

from __future__ import annotations

from pathlib import Path

from issuer.db import metadata
from servicedb import Migrations

MIGRATIONS = Migrations(
    scripts=Path(__file__).parent,
    metadata=metadata,
    # Named for the issuer, so that the todo app's own migrations can share a
    # PostgreSQL database with it.
    version_table="issuer_schema_version",
    baseline="0001",
    adopt_if_present="users",
)
VERSION_TABLE = MIGRATIONS.version_table
BASELINE = MIGRATIONS.baseline
upgrade = MIGRATIONS.upgrade
current = MIGRATIONS.current
head = MIGRATIONS.head
