"""Fixtures: a deployment (issuer, proxy, key ring) in a temporary directory, always torn down."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.migrate import LocalDatabase
from tests.resilience.services import Deployment


@pytest.fixture
def deploy() -> Iterator[Callable[..., Deployment]]:
    """Make deployments over a database: key ring created, no server started yet.

    Every server a test starts is stopped (SIGKILL at the latest) at teardown,
    whatever the test did to it.
    """
    made: list[Deployment] = []
    # Outside pytest's temp root, as for `pg_server` (see tests/conftest.py).
    root = Path(tempfile.mkdtemp(prefix="neon-own-login-resilience-"))

    def make(database: LocalDatabase, **settings: Any) -> Deployment:
        deployment = Deployment(root / str(len(made)), database, **settings)
        deployment.root.mkdir()
        made.append(deployment)
        deployment.cli("keys", "init")
        return deployment

    try:
        yield make
    finally:
        for deployment in made:
            deployment.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def deployment(deploy: Callable[..., Deployment], neon_db: LocalDatabase) -> Deployment:
    """A deployment over the test session's database."""
    return deploy(neon_db)
