"""Shared fixtures: one real embedded PostgreSQL per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack import postgres


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.Server]:
    """A fresh embedded PostgreSQL 18 in a temporary directory, stopped at the end."""
    data = tmp_path_factory.mktemp("pg") / "data"
    server = postgres.start(data)
    yield server
    postgres.stop(data, mode="immediate")
