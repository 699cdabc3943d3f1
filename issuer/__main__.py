"""`python -m issuer …`: the issuer's commands (serve, keys, users, clients, token, gc, db)."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from issuer import create_app
from issuer.server import serve_command


def _create_app() -> Flask:
    """A bad setting (ISSUER_DATABASE_URL, ISSUER_SIGNUP, …) is the operator's
    to fix: print what is wrong and exit 1, without a traceback."""
    try:
        return create_app()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


cli = FlaskGroup(create_app=_create_app, add_default_commands=False, load_dotenv=True)
# Not an app command: the master process builds no app, each worker builds its own.
cli.add_command(serve_command)

if __name__ == "__main__":
    sys.exit(cli(prog_name="python -m issuer"))
