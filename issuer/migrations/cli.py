"""`python -m issuer db upgrade|status`: the issuer's schema version, by hand.

Every issuer process migrates its database when it starts; these commands let
an operator do it ahead of a deployment, or check where a database stands.
"""

from __future__ import annotations

import click
from flask import current_app

from issuer import migrations
from issuer.cli import command_group

db_cli = command_group("db", "Migrate the issuer's database (also done at every start).")


@db_cli.command("upgrade")
def upgrade() -> None:
    """Bring the database to this release's schema."""
    engine = current_app.extensions["db"]
    migrations.upgrade(engine)
    click.echo(f"the issuer's database is at revision {migrations.head()}")


@db_cli.command("status")
def status() -> None:
    """Print the database's revision and this release's."""
    with current_app.extensions["db"].connect() as conn:
        revision = migrations.current(conn)
    click.echo(f"database: {revision or 'none'}\nthis release: {migrations.head()}")
