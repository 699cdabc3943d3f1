"""`python -m issuer …`: the issuer's commands (keys, users, clients, token)."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from issuer import create_app


def _create_app() -> Flask:
    """A bad setting (ISSUER_DATABASE_URL, ISSUER_SIGNUP, …) is the operator's
    to fix: print what is wrong and exit 1, without a traceback."""
    try:
        return create_app()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


cli = FlaskGroup(create_app=_create_app, add_default_commands=False, load_dotenv=True)

if __name__ == "__main__":
    sys.exit(cli(prog_name="python -m issuer"))
