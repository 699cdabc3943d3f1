"""A service's own SQL database: its engine (`engine_for`) and its versioned schema
(`Migrations`). Shared by the issuer and the todo app; it knows neither."""

from servicedb.engine import engine_for, normalize_url, sqlite_file
from servicedb.migrations import Migrations

__all__ = ["Migrations", "engine_for", "normalize_url", "sqlite_file"]
