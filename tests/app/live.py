"""The whole stack, live on loopback ports, for the app's tests.

Every part is real: the issuer (key ring, users, OAuth) and the todo app are
Flask apps on werkzeug's threaded server, the proxy validates the issuer's
ES256 tokens against its published JWKS and runs SQL in the session's
embedded PostgreSQL under RLS. Ports are chosen by the kernel (port 0), and
each app is created once its own URL is known.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import delete, select

from app import create_app
from app.config import AppConfig
from app.store import logins
from issuer import create_app as create_issuer
from issuer.accounts import users
from issuer.config import DEFAULT_DATABASE_AUDIENCE as DATABASE_AUDIENCE
from issuer.config import Config as IssuerConfig
from issuer.db import get_engine, secret_digest
from issuer.keys import KeyRing
from issuer.oauth import clients
from issuer.oauth.clients import Registration
from proxy.config import ProxyConfig
from proxy.rules import AuthRule
from stack.mailbox import MailServer
from stack.migrate import LocalDatabase
from tests.proxy.support import Proxy, base_config
from tests.support.mail import Inbox
from tests.support.servers import LiveServer

HTTP_TIMEOUT = 15
PASSWORD = "correct horse battery staple"
# `quick_stack`: access tokens last 5 s and are refreshed with less than 3 s left.
QUICK_TOKEN_TTL = 5
QUICK_REFRESH_MARGIN = 3


@dataclass
class Stack:
    issuer: Flask
    issuer_server: LiveServer
    proxy_url: str
    app: Flask
    app_server: LiveServer
    client_id: str
    client_secret: str
    inbox: Inbox
    users: dict[str, str] = field(default_factory=dict)

    @property
    def app_url(self) -> str:
        return self.app_server.url

    @property
    def issuer_url(self) -> str:
        return self.issuer_server.url

    @property
    def sql_url(self) -> str:
        return f"{self.proxy_url}/sql"

    @property
    def data_api_url(self) -> str:
        return f"{self.proxy_url}/neondb/rest/v1"


def hidden_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html
    )
    assert match, f"no {name} field on the page"
    return match.group(1)


def submit_login_form(
    stack: Stack, browser: requests.Session, email: str, password: str = PASSWORD, **post: Any
) -> requests.Response:
    """Start the app's login and submit the issuer's password form; `post` goes to
    that POST (e.g. `allow_redirects=False` to stop before the app's callback)."""
    page = browser.get(f"{stack.app_url}/login", timeout=HTTP_TIMEOUT)
    assert page.url.startswith(f"{stack.issuer_url}/login"), page.url
    return browser.post(
        page.url,
        data={
            "email": email,
            "password": password,
            "csrf_token": hidden_field(page.text, "csrf_token"),
        },
        timeout=HTTP_TIMEOUT,
        **post,
    )


def log_in(stack: Stack, email: str, password: str = PASSWORD) -> requests.Session:
    """A browser-like HTTP session logged in to the app through the issuer's pages."""
    browser = requests.Session()
    done = submit_login_form(stack, browser, email, password)
    assert done.status_code == 200, done.text
    assert done.url == f"{stack.app_url}/", done.url
    return browser


def csrf(browser: requests.Session, stack: Stack) -> str:
    page = browser.get(f"{stack.app_url}/", timeout=HTTP_TIMEOUT)
    return hidden_field(page.text, "csrf_token")


def log_out(stack: Stack, browser: requests.Session) -> requests.Response:
    """Log out of the app as a browser does: post /logout, then the signing-out page's
    form to the issuer's /end-session (its script submits it at once). Returns the
    last response; no URL of the way holds the ID token."""
    page = browser.post(
        f"{stack.app_url}/logout", data={"csrf_token": csrf(browser, stack)}, timeout=HTTP_TIMEOUT
    )
    assert_no_crash(page)
    assert page.url == f"{stack.app_url}/logout/issuer" and "Signing out" in page.text, page.url
    action = re.search(r'<form id="end-session" method="post" action="([^"]+)"', page.text)
    assert action is not None, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    assert action.group(1) == f"{stack.issuer_url}/end-session"
    done = browser.post(action.group(1), data=fields, timeout=HTTP_TIMEOUT)
    for hop in (page, *done.history, done):
        assert "id_token_hint" not in hop.url and "eyJ" not in hop.url, hop.url
    return done


def closed_port_url() -> str:
    """A loopback URL nothing listens on: the port was free a moment ago and is closed now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_crash(response: requests.Response) -> None:
    """What no response may ever be: a 500, or a page that leaks a stack trace."""
    for hop in (*response.history, response):
        assert hop.status_code != 500, hop.text
        assert "Traceback" not in hop.text, hop.text
        assert 'File "' not in hop.text, hop.text


def login_row(app: Flask, browser: requests.Session) -> Any:
    """The app's server-side login behind `browser`'s session cookie."""
    login_id = secret_digest(session_cookie(browser)["login"])
    with app.extensions["app_store"].connect() as conn:
        row = conn.execute(select(logins).where(logins.c.id == login_id)).first()
    assert row is not None, "no login behind this cookie"
    return row


def forget_logins(app: Flask, sub: str) -> None:
    """End every login of `sub` on the server side, as an expired or revoked session would."""
    with app.extensions["app_store"].begin() as conn:
        conn.execute(delete(logins).where(logins.c.sub == sub))


def session_cookie(browser: requests.Session) -> dict[str, Any]:
    """The app's session cookie, decoded (Flask signs it, it does not encrypt it)."""
    value = browser.cookies["app_session"]
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".", 1)[0]
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return json.loads(zlib.decompress(data) if compressed else data)


def start_stack(
    root: Path,
    neon_db: LocalDatabase,
    start_proxy: Callable[[ProxyConfig], Proxy],
    mail_server: MailServer,
    *,
    issuer_changes: dict[str, Any] | None = None,
    app_changes: dict[str, Any] | None = None,
) -> Stack:
    """Issuer, proxy and app under `root`, wired as `make run` wires them, with
    settings changed (a short access-token lifetime, a refresh margin)."""
    issuer_server, app_server = LiveServer("localhost"), LiveServer("localhost")
    issuer_config = IssuerConfig(
        issuer_url=issuer_server.url,
        keys_dir=root / "keys",
        database_url=f"sqlite:///{root / 'issuer.sqlite3'}",
        data_dir=root / "issuer-data",
        secret_key="issuer-test-secret-key-not-for-production",
        smtp_url=mail_server.url,
        # Every browser of the suite signs up from 127.0.0.1.
        signup_max_per_address=10_000,
        mail_max_per_address=10_000,
        **(issuer_changes or {}),
    )
    KeyRing(issuer_config.keys_dir).init()
    issuer = create_issuer(issuer_config)
    issuer_server.app = issuer
    # As `make run` wires it: the proxy requires the database audience, which only
    # the todo app's client may obtain.
    jwks_url = f"{issuer_server.url}/.well-known/jwks.json"
    proxy = start_proxy(
        base_config(
            neon_db,
            jwks_url,
            auth_rules=[
                AuthRule(
                    "issuer",
                    jwks_url,
                    DATABASE_AUDIENCE,
                    ("authenticated", "anonymous", "authenticator"),
                )
            ],
        )
    )
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
                audiences=(DATABASE_AUDIENCE,),
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
            data_api_url=f"{proxy.url}/neondb/rest/v1",
            store_url=f"sqlite:///{root / 'app.sqlite3'}",
            data_dir=root / "app-data",
            secret_key="app-test-secret-key-not-for-production",
            **(app_changes or {}),
        )
    )
    app_server.app = app
    return Stack(
        issuer,
        issuer_server,
        proxy.url,
        app,
        app_server,
        client.client_id,
        secret,
        Inbox(mail_server.maildir),
    )


def create_user(stack: Stack, email: str) -> str:
    """Create a user at `stack`'s issuer (once per email); returns the email."""
    if email not in stack.users:
        with stack.issuer.app_context():
            user = users.create_user(get_engine(), email, PASSWORD, email_verified=True)
            stack.users[email] = user.id
    return email
