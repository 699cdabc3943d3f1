"""Shared fixtures: one real embedded PostgreSQL per test session."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import migrate, postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.Server]:
    """A fresh embedded PostgreSQL 18 in a temporary directory, removed at the end.

    The directory lives outside pytest's own temp root: pytest resets that root's
    mode at every session start, which would cut a concurrently running session's
    server (running as another OS user when we are root) off its data directory.
    """
    base = Path(tempfile.mkdtemp(prefix="neon-own-login-pg-"))
    data = base / "data"
    server = postgres.start(data)
    yield server
    postgres.stop(data, mode="immediate")
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def neon_db(pg_server: postgres.Server) -> migrate.LocalDatabase:
    """`neondb` on the session's server: roles, local `auth` schema and todos, migrated once."""
    return migrate.apply_local(pg_server)
