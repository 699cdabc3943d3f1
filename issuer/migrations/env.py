"""Alembic's entry point for the issuer's tables: runs on the connection `upgrade` passes in."""

from alembic import context

from issuer.db import metadata
from issuer.migrations import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # SQLite alters tables by copying them; Alembic's batch mode does that for us.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
