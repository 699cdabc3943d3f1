"""Security headers: `nosniff` on every response, and the policy of every HTML page.

A page's Content-Security-Policy names where its forms may go (`form-action`).
Browsers apply that to the redirects after a submit too, so a page whose form
continues an authorization request (login, consent, logout confirmation) also
names the origin the browser lands on: the client's redirect URI, checked
against its registration, never an origin taken from the URL as it stands.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g

_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)

#: Where a local URL (an authorization request) may send the browser: origins.
Continuation = Callable[[str], Iterable[str]]


def init_app(app: Flask) -> None:
    app.extensions.setdefault("issuer_continuations", [])
    app.after_request(_every_response)


def add_continuation(app: Flask, continuation: Continuation) -> None:
    """Let pages that go on to `url` allow the origins `continuation(url)` names."""
    app.extensions["issuer_continuations"].append(continuation)


#: A host[:port] that can stand in a CSP source list as it is (no `;`, `,` or space).
_NETLOC = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not _NETLOC.fullmatch(parts.netloc):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def allow_form_targets(*urls: str | None) -> None:
    """This page's forms (or their redirects) may also reach these URLs' origins."""
    allowed = g.setdefault("form_action_origins", set())
    allowed.update(o for o in map(origin, filter(None, urls)) if o is not None)


def continue_to(local_url: str) -> None:
    """This page's form ends in `local_url`: allow where that request goes next."""
    for continuation in current_app.extensions["issuer_continuations"]:
        allow_form_targets(*continuation(local_url))


def allow_scripts() -> None:
    """This page runs our own scripts (passkeys), which call back only to us."""
    g.page_scripts = True


def page_headers(response: Response) -> Response:
    """Pages with forms and personal data: never cached, never framed, strict CSP."""
    extra = " ".join(sorted(g.get("form_action_origins", ())))
    scripts = "script-src 'self'; connect-src 'self'; " if g.get("page_scripts") else ""
    response.headers["Content-Security-Policy"] = f"{scripts}{_POLICY} {extra}".rstrip()
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _every_response(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
