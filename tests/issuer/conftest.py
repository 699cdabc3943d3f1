"""Fixtures shared by the issuer's tests: an injectable clock, key rings, an app."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from sqlalchemy import text

import servicedb
from issuer import create_app, db, migrations
from issuer.config import Config
from issuer.keys import KeyRing
from stack.mailbox import MailServer
from tests.support.jose import verify_with_jwks

T0 = 1_800_000_000


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def ring(keys_dir: Path, clock: FakeClock) -> KeyRing:
    """An initialised ring (active + next) on the fake clock."""
    ring = KeyRing(keys_dir, clock=clock)
    ring.init()
    return ring


@pytest.fixture
def issuer_config(tmp_path: Path, keys_dir: Path, mail_server: MailServer) -> Config:
    """A config whose every path lives under the test's tmp_path, mailing to the
    session's local SMTP server."""
    return Config(
        smtp_url=mail_server.url,
        keys_dir=keys_dir,
        database_url=f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-not-for-production",
    )


@pytest.fixture
def keys_app(issuer_config: Config, ring: KeyRing) -> Flask:
    """The issuer app, signing with the fake-clock `ring`."""
    app = create_app(issuer_config)
    app.config["TESTING"] = True
    app.extensions["keyring"] = ring
    return app


@pytest.fixture
def verify() -> Callable[[str, bytes], jwt.Token]:
    """Verify a token with an independent JOSE library, given only a published JWKS body."""
    return verify_with_jwks


@pytest.fixture(scope="session")
def issuer_pg_url(pg_server) -> str:
    """A database `issuer` on the session's embedded PostgreSQL (created once)."""
    with psycopg.connect(pg_server.url(), autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE DATABASE issuer")
    return pg_server.url(dbname="issuer")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_config(request: pytest.FixtureRequest, issuer_config: Config) -> Config:
    """`issuer_config` on each storage backend; the PostgreSQL one starts empty."""
    if request.param == "sqlite":
        return issuer_config
    url = request.getfixturevalue("issuer_pg_url")
    engine = servicedb.engine_for(url)
    try:
        db.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
    finally:
        engine.dispose()
    return dataclasses.replace(issuer_config, database_url=url)


@pytest.fixture
def make_issuer_app(backend_config: Config) -> Iterator[Callable[..., Flask]]:
    """Build apps on `backend_config` (fields overridable); their database
    pools are closed after the test, so PostgreSQL connections do not pile up."""
    apps: list[Flask] = []

    def make(**changes: object) -> Flask:
        app = create_app(dataclasses.replace(backend_config, **changes))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["keyring"].close()
        app.extensions["db"].dispose()


@pytest.fixture
def alice_browser(oauth_app: Flask) -> FlaskClient:
    """A browser logged in to the issuer as alice@example.com."""
    from tests.issuer.oauth_flows import log_in, make_user

    make_user(oauth_app)
    client = oauth_app.test_client()
    log_in(client, "alice@example.com")
    return client


@pytest.fixture
def oauth_app(issuer_config: Config) -> Flask:
    """The issuer app on a real-clock ring (tokens are checked against the real time)."""
    KeyRing(issuer_config.keys_dir).init()
    app = create_app(issuer_config)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def make_app(issuer_config: Config) -> Callable[..., Flask]:
    """An issuer app on SQLite with `issuer_config` changed as asked (mail to `inbox`)."""
    KeyRing(issuer_config.keys_dir).init()

    def make(**changes: object) -> Flask:
        app = create_app(dataclasses.replace(issuer_config, **changes))
        app.config["TESTING"] = True
        return app

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()
