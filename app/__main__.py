"""`python -m app …`: the todo app's Flask CLI (`run` for development, `serve` for
production: `make app`)."""

from __future__ import annotations

import sys

from flask import Flask
from flask.cli import FlaskGroup, NoAppException

from app import create_app
from app.server import serve_command


def _create_app() -> Flask:
    """A bad or missing setting is the operator's to fix: one line, exit 1."""
    try:
        return create_app()
    except ValueError as exc:
        # NoAppException: Flask prints it as one line even while listing
        # commands for --help, where any other error is shown as a traceback.
        raise NoAppException(str(exc)) from None


cli = FlaskGroup(create_app=_create_app, load_dotenv=True)
cli.add_command(serve_command)

if __name__ == "__main__":
    sys.exit(cli(prog_name="python -m app"))
