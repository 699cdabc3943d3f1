"""Fixtures for the fuzz tests: the real proxy and issuer apps, called in process.

Hypothesis runs hundreds of examples per test, so requests go straight into the
WSGI apps (no sockets) with environs built by hand: a real server hands an app
any latin-1 header value, which werkzeug's test client would refuse to send.
Everything behind the apps is real: PostgreSQL, signing keys, the JWKS fetched
over loopback HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from issuer import create_app as create_issuer
from issuer.config import Config
from issuer.keys import KeyRing
from proxy import create_app as create_proxy
from proxy.session import SessionKey
from stack.migrate import LocalDatabase
from stack.postgres import Server
from tests.proxy.support import JwksServer, SigningKey, base_config, new_ec_key


@pytest.fixture(scope="session")
def fuzz_keys() -> tuple[SigningKey, SigningKey]:
    """An ES256 and an RS256 key, both published by `fuzz_jwks`."""
    return new_ec_key("fuzz-ec"), SigningKey(
        "fuzz-rsa", rsa.generate_private_key(65537, 2048), "RS256"
    )


@pytest.fixture(scope="session")
def fuzz_jwks(fuzz_keys: tuple[SigningKey, SigningKey]) -> Iterator[str]:
    server = JwksServer()
    yield server.publish("/fuzz/jwks.json", *fuzz_keys)
    server.httpd.shutdown()


@pytest.fixture(scope="session")
def proxy_app(neon_db: LocalDatabase, fuzz_jwks: str) -> Iterator[Flask]:
    """The proxy on the session's `neondb`, trusting `fuzz_jwks` for both roles."""
    config = base_config(neon_db, fuzz_jwks, pool_timeout=2.0, request_timeout=5.0)
    key = SessionKey.generate()
    key.install(config.admin_url)
    app = create_proxy(config, key)
    yield app
    app.extensions["proxy"].close()
    key.drop(config.admin_url)


#: Set, not the default: the claims the tests sign must name this issuer exactly.
ISSUER_URL = "http://127.0.0.1:8001"


@pytest.fixture(scope="session")
def issuer_app(pg_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The issuer on PostgreSQL (its own database on the session's server), real key ring."""
    with psycopg.connect(pg_server.url(), autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE DATABASE issuer_fuzz")
    tmp: Path = tmp_path_factory.mktemp("issuer-fuzz")
    config = Config(
        issuer_url=ISSUER_URL,
        keys_dir=tmp / "keys",
        database_url=pg_server.url(dbname="issuer_fuzz"),
        data_dir=tmp / "data",
        secret_key="fuzz-secret-key",
    )
    KeyRing(config.keys_dir).init()
    app = create_issuer(config)
    yield app
    app.extensions["db"].dispose()
