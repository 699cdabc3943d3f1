"""Fixtures for the proxy tests (helpers live in `tests.proxy.support`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from proxy.config import ProxyConfig
from stack.migrate import LocalDatabase
from tests.proxy.support import (
    JwksServer,
    Proxy,
    SigningKey,
    base_config,
    claims_for,
    new_ec_key,
)


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return new_ec_key("ec-main")


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-main", rsa.generate_private_key(65537, 2048), "RS256")


@pytest.fixture(scope="session")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.httpd.shutdown()


@pytest.fixture(scope="session")
def main_jwks(jwks_server: JwksServer, ec_key: SigningKey, rsa_key: SigningKey) -> str:
    return jwks_server.publish("/main/jwks.json", ec_key, rsa_key)


@pytest.fixture(scope="session")
def proxy(
    start_proxy: Callable[[ProxyConfig], Proxy], neon_db: LocalDatabase, main_jwks: str
) -> Proxy:
    return start_proxy(base_config(neon_db, main_jwks))


@pytest.fixture
def user_token(ec_key: SigningKey) -> Callable[[str], str]:
    return lambda sub: ec_key.sign(claims_for(sub))


@pytest.fixture
def owner(neon_db: LocalDatabase) -> Iterator[psycopg.Connection]:
    with psycopg.connect(neon_db.superuser_url, autocommit=True) as conn:
        yield conn
