"""The production stack for the load test, with accounts for the visitors who log in."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import servicedb
from issuer import migrations
from issuer.accounts import users
from tests.load.visitor import PASSWORD, email_of
from tests.support.supervised_stack import SupervisedStack

VISITORS = int(os.environ.get("LOAD_USERS", "16"))
# Short enough that every visitor's session refreshes several times in a run.
ACCESS_TOKEN_TTL = 4
REFRESH_MARGIN = 2


def has_account(index: int) -> bool:
    """Odd visitors log in to an existing account; even ones sign up."""
    return index % 2 == 1


@pytest.fixture(scope="module")
def production_stack() -> Iterator[SupervisedStack]:
    # Outside pytest's temp root, as for `pg_server` (see tests/conftest.py).
    base = Path(tempfile.mkdtemp(prefix="neon-own-login-load-"))
    stack = SupervisedStack(
        base,
        {
            "ISSUER_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL),
            "APP_REFRESH_MARGIN": str(REFRESH_MARGIN),
            # Every visitor comes from 127.0.0.1, and an attempt in flight counts
            # as a failure of its address until it succeeds: the default budget
            # (20) is for one person, not for a crowd signing in at once.
            "ISSUER_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000",
            "ISSUER_SIGNUP_MAX_PER_ADDRESS": "1000",
        },
    )
    engine = servicedb.engine_for(stack.issuer_database_url)
    try:
        migrations.upgrade(engine)
        for index in filter(has_account, range(VISITORS)):
            users.create_user(engine, email_of(index), PASSWORD, email_verified=True)
    finally:
        engine.dispose()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
