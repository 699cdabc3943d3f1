"""Alembic revisions of the app's own tables, oldest first."""
