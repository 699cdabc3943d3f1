"""`python -m issuer …`: the issuer's commands (keys, users, clients, token)."""

from __future__ import annotations

import sys

from flask.cli import FlaskGroup

from issuer import create_app

cli = FlaskGroup(create_app=lambda: create_app(), add_default_commands=False, load_dotenv=True)

if __name__ == "__main__":
    sys.exit(cli(prog_name="python -m issuer"))
