"""`python -m stack`: the local database and, later, the whole stack."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from stack import postgres


def data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR", ".data")) / "pg"


@click.group()
def cli() -> None:
    """Local stack commands."""


@cli.group()
def db() -> None:
    """The embedded PostgreSQL server under DATA_DIR (default .data/)."""


@db.command("up")
def db_up() -> None:
    """Start the embedded server (initialising it on first use) and print its URL."""
    server = postgres.start(data_dir())
    click.echo(server.url())


@db.command("down")
def db_down() -> None:
    """Stop the embedded server."""
    if not postgres.stop(data_dir()):
        click.echo("embedded PostgreSQL was not running", err=True)


@db.command("url")
def db_url() -> None:
    """Print the superuser URL of the running embedded server."""
    server = postgres.running(data_dir())
    if server is None:
        raise click.ClickException("embedded PostgreSQL is not running (make db-up)")
    click.echo(server.url())


if __name__ == "__main__":
    sys.exit(cli())
