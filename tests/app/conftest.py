"""Fixtures for the app's tests: the live stack (see tests/app/live.py)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app import create_app
from app.config import AppConfig
from issuer import create_app as create_issuer
from issuer.accounts import users
from issuer.config import Config
from issuer.db import get_engine
from issuer.keyring import KeyRing
from issuer.oauth import clients
from issuer.oauth.clients import Registration
from proxy.config import ProxyConfig
from stack.migrate import LocalDatabase
from tests.app.live import (
    PASSWORD,
    QUICK_REFRESH_MARGIN,
    QUICK_TOKEN_TTL,
    LiveServer,
    Stack,
    start_stack,
)
from tests.proxy.support import Proxy, base_config


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="neon-own-login-app-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(
    stack_dir: Path, neon_db: LocalDatabase, start_proxy: Callable[[ProxyConfig], Proxy]
) -> Iterator[Stack]:
    """Issuer, proxy and app, wired as `make run` wires them."""
    issuer_server, app_server = LiveServer(), LiveServer()
    issuer_config = Config(
        issuer_url=issuer_server.url,
        keys_dir=stack_dir / "keys",
        database_url=f"sqlite:///{stack_dir / 'issuer.sqlite3'}",
        data_dir=stack_dir / "issuer-data",
        secret_key="issuer-test-secret-key-not-for-production",
    )
    KeyRing(issuer_config.keys_dir).init()
    issuer = create_issuer(issuer_config)
    issuer_server.app = issuer
    proxy = start_proxy(base_config(neon_db, f"{issuer_server.url}/.well-known/jwks.json"))
    with issuer.app_context():
        client, secret = clients.register(
            get_engine(),
            Registration(
                name="Todo app",
                redirect_uris=(f"{app_server.url}/auth/callback",),
                post_logout_redirect_uris=(f"{app_server.url}/",),
                public=False,
                first_party=True,
                scope="openid profile email",
            ),
        )
    assert secret is not None
    app = create_app(
        AppConfig(
            app_url=app_server.url,
            issuer_url=issuer_server.url,
            client_id=client.client_id,
            client_secret=secret,
            sql_endpoint=f"{proxy.url}/sql",
            database_url=f"sqlite:///{stack_dir / 'app.sqlite3'}",
            data_dir=stack_dir / "app-data",
            secret_key="app-test-secret-key-not-for-production",
        )
    )
    app_server.app = app
    live = Stack(issuer, issuer_server, proxy.url, app, app_server, client.client_id, secret)
    yield live
    for server in (app_server, issuer_server):
        server.stop()


@pytest.fixture
def make_user(stack: Stack) -> Callable[[str], str]:
    """Create a user at the issuer (once per email); returns the email."""

    def make(email: str) -> str:
        if email not in stack.users:
            with stack.issuer.app_context():
                stack.users[email] = users.create_user(get_engine(), email, PASSWORD).id
        return email

    return make


@pytest.fixture(scope="session")
def quick_stack(
    neon_db: LocalDatabase, start_proxy: Callable[[ProxyConfig], Proxy]
) -> Iterator[Stack]:
    """A second stack whose access tokens last 5 s and are refreshed with 3 s left,
    so that refreshes (and key rotations) happen within a test."""
    root = Path(tempfile.mkdtemp(prefix="neon-own-login-quick-"))
    live = start_stack(
        root,
        neon_db,
        start_proxy,
        issuer_changes={"access_token_ttl": QUICK_TOKEN_TTL},
        app_changes={"refresh_margin": QUICK_REFRESH_MARGIN},
    )
    yield live
    for server in (live.app_server, live.issuer_server):
        server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def app_variant(stack: Stack) -> Iterator[Callable[..., str]]:
    """Serve the stack's app again with some settings changed (an issuer or SQL
    endpoint nobody answers at); returns its URL. It shares the app's storage
    and secret key, so a browser logged in to the stack is logged in there too
    (cookies do not tell loopback ports apart)."""
    servers: list[LiveServer] = []

    def serve(**changes: object) -> str:
        server = LiveServer()
        server.app = create_app(dataclasses.replace(stack.app.config["APP"], **changes))
        servers.append(server)
        return server.url

    yield serve
    for server in servers:
        server.stop()
