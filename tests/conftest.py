"""Shared fixtures: one real embedded PostgreSQL per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack import migrate, postgres


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.Server]:
    """A fresh embedded PostgreSQL 18 in a temporary directory, stopped at the end."""
    data = tmp_path_factory.mktemp("pg") / "data"
    server = postgres.start(data)
    yield server
    postgres.stop(data, mode="immediate")


@pytest.fixture(scope="session")
def neon_db(pg_server: postgres.Server) -> migrate.LocalDatabase:
    """`neondb` on the session's server: roles, local `auth` schema and todos, migrated once."""
    return migrate.apply_local(pg_server)
