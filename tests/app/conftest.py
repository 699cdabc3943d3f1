"""Fixtures for the app's tests: the live stack (see tests/app/live.py)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from app import create_app
from proxy.config import ProxyConfig
from stack.mailbox import MailServer
from stack.migrate import LocalDatabase
from tests.app.browser import OpenPerson, Person, launch, new_context
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def person(browser: Browser, stack: Stack) -> Iterator[OpenPerson]:
    """Open a new browser context (a new person); all are closed after the test."""
    people: list[Person] = []

    def open_context(*, javascript: bool = True) -> Person:
        context = new_context(browser, javascript=javascript)
        people.append(Person(context.new_page(), stack))
        return people[-1]

    yield open_context
    for someone in people:
        someone.page.context.close()
    errors = [error for someone in people for error in someone.script_errors]
    assert not errors, f"the pages raised script errors or broke their CSP: {errors}"


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
        server = LiveServer("localhost")
        server.app = create_app(dataclasses.replace(stack.app.config["APP"], **changes))
        servers.append(server)
        return server.url

    yield serve
    for server in servers:
        server.stop()
