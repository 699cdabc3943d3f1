"""Fixtures for the app's tests: the live stack (see tests/app/live.py)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app import create_app
from proxy.config import ProxyConfig
from stack.mailbox import MailServer
from stack.migrate import LocalDatabase
from tests.app.live import (
    QUICK_REFRESH_MARGIN,
    QUICK_TOKEN_TTL,
    LiveServer,
    Stack,
    create_user,
    start_stack,
)
from tests.proxy.support import Proxy


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="neon-own-login-app-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(
    stack_dir: Path,
    neon_db: LocalDatabase,
    start_proxy: Callable[[ProxyConfig], Proxy],
    mail_server: MailServer,
) -> Iterator[Stack]:
    """Issuer, proxy and app, wired as `make run` wires them."""
    live = start_stack(stack_dir, neon_db, start_proxy, mail_server)
    yield live
    for server in (live.app_server, live.issuer_server):
        server.stop()


@pytest.fixture
def make_user(stack: Stack) -> Callable[[str], str]:
    """Create a user at the issuer (once per email); returns the email."""
    return lambda email: create_user(stack, email)


@pytest.fixture(scope="session")
def quick_stack(
    neon_db: LocalDatabase,
    start_proxy: Callable[[ProxyConfig], Proxy],
    mail_server: MailServer,
) -> Iterator[Stack]:
    """A second stack whose access tokens last 5 s and are refreshed with 3 s left,
    so that refreshes (and key rotations) happen within a test."""
    root = Path(tempfile.mkdtemp(prefix="neon-own-login-quick-"))
    live = start_stack(
        root,
        neon_db,
        start_proxy,
        mail_server,
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
