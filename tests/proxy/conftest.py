"""Fixtures for the proxy tests (helpers live in `tests.proxy.support`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server

from proxy import create_app
from proxy.config import ProxyConfig
from proxy.session import SessionKey
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
def start_proxy(
    neon_db: LocalDatabase,
) -> Iterator[Callable[[ProxyConfig], Proxy]]:
    """Start a proxy for a config; every proxy started is stopped at the end of the session."""
    stops: list[Callable[[], None]] = []

    def start(config: ProxyConfig) -> Proxy:
        key = SessionKey.generate()
        key.install(config.admin_url)
        app = create_app(config, key)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def stop() -> None:
            server.shutdown()
            app.extensions["proxy"].close()
            key.drop(config.admin_url)

        stops.append(stop)
        return Proxy(f"http://127.0.0.1:{server.server_port}", app, config)

    yield start
    for stop in stops:
        stop()


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
