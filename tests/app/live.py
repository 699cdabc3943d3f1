"""The whole stack, live on loopback ports, for the app's tests.

Every part is real: the issuer (key ring, users, OAuth) and the todo app are
Flask apps on werkzeug's threaded server, the proxy validates the issuer's
ES256 tokens against its published JWKS and runs SQL in the session's
embedded PostgreSQL under RLS. Ports are chosen by the kernel (port 0), and
each app is created once its own URL is known.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

HTTP_TIMEOUT = 15
PASSWORD = "correct horse battery staple"


class LiveServer:
    """A threaded WSGI server whose app can be swapped (or set after the port is known)."""

    def __init__(self) -> None:
        self.app: Callable[..., Any] | None = None
        self.httpd: BaseWSGIServer = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down\n"]
        return self.app(environ, start_response)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Stack:
    issuer: Flask
    issuer_server: LiveServer
    proxy_url: str
    app: Flask
    app_server: LiveServer
    client_id: str
    client_secret: str
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


def hidden_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html
    )
    assert match, f"no {name} field on the page"
    return match.group(1)


def log_in(stack: Stack, email: str, password: str = PASSWORD) -> requests.Session:
    """A browser-like HTTP session logged in to the app through the issuer's pages."""
    browser = requests.Session()
    page = browser.get(f"{stack.app_url}/login", timeout=HTTP_TIMEOUT)
    assert page.url.startswith(f"{stack.issuer_url}/login"), page.url
    done = browser.post(
        page.url,
        data={"email": email, "password": password, "csrf_token": hidden_field(page.text, "csrf_token")},
        timeout=HTTP_TIMEOUT,
    )
    assert done.status_code == 200, done.text
    assert done.url == f"{stack.app_url}/", done.url
    return browser


def csrf(browser: requests.Session, stack: Stack) -> str:
    page = browser.get(f"{stack.app_url}/", timeout=HTTP_TIMEOUT)
    return hidden_field(page.text, "csrf_token")
