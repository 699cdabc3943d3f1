"""Shared fixtures: one real embedded PostgreSQL per test session, and proxies in front of it."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from proxy import create_app
from proxy.config import ProxyConfig
from proxy.session import SessionKey
from stack import migrate, postgres
from stack.mailbox import MailServer
from tests.proxy.support import Proxy
from tests.support.mail import Inbox


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.Server]:
    """A fresh embedded PostgreSQL 18 in a temporary directory, removed at the end.

    The directory lives outside pytest's own temp root: pytest resets that root's
    mode at every session start, which would cut a concurrently running session's
    server (running as another OS user when we are root) off its data directory.
    """
    base = Path(tempfile.mkdtemp(prefix="neon-own-login-pg-"))
    data = base / "data"
    server = postgres.start(data)
    yield server
    postgres.stop(data, mode="immediate")
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def neon_db(pg_server: postgres.Server) -> migrate.LocalDatabase:
    """`neondb` on the session's server: roles, local `auth` schema and todos, migrated once."""
    return migrate.apply_local(pg_server)


@pytest.fixture(scope="session")
def start_proxy(
    neon_db: migrate.LocalDatabase,
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
def mail_server() -> Iterator[MailServer]:
    """One real SMTP server on loopback for the session, delivering to a Maildir."""
    base = Path(tempfile.mkdtemp(prefix="neon-own-login-mail-"))
    with MailServer(base / "mail") as server:
        yield server
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def inbox(mail_server: MailServer) -> Inbox:
    return Inbox(mail_server.maildir)
