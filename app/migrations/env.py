"""Alembic's entry point for the app's own tables (see `servicedb.migrations.run_env`)."""

from servicedb.migrations import run_env

run_env()
