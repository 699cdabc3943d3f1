"""`/sql`: Neon's SQL-over-HTTP endpoint, as WSGI middleware in front of Flask.

A request flows one way: headers (connection string, bearer token, flags) ->
JWT validation for the role -> body -> one pipelined round trip on a pooled
connection of that role -> JSON. Nothing reaches Postgres before the token is
valid for the role.

Every client request is a POST here, so the endpoint skips Flask the way
issuer/jwks.py does: headers are read straight from the environ, the body is
read once through werkzeug's length-safe stream, and the response headers are
a short list. That is about a third of the proxy's CPU per request under
gunicorn (see bench/proxy.py). Other paths and methods still reach the Flask
app, for its JSON 404.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from flask import Flask
from werkzeug.wsgi import get_content_length, get_input_stream

from proxy.errors import AuthError, PayloadTooLarge, ProxyError, ResponseTooLarge
from proxy.pipeline import execute
from proxy.protocol import (
    ARRAY_MODE,
    CONNECTION_STRING,
    DEFERRABLE,
    ISOLATION_LEVEL,
    RAW_TEXT_OUTPUT,
    READ_ONLY,
    SqlRequest,
    parse_bearer,
    parse_body,
    parse_options,
    parse_target,
)
from proxy.services import Services
from servicemetrics import observed

PATH = "/sql"
# What Neon answers (400, code "") when its control plane knows no such endpoint.
UNKNOWN_ENDPOINT = (
    "failed to fetch auth rules: Control plane request failed: endpoint cannot be found"
)
log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Headers = list[tuple[str, str]]

# The request headers the protocol reads, by their WSGI environ keys.
_READ = tuple(
    (name, "HTTP_" + name.upper().replace("-", "_"))
    for name in (
        CONNECTION_STRING,
        "Authorization",
        RAW_TEXT_OUTPUT,
        ARRAY_MODE,
        ISOLATION_LEVEL,
        READ_ONLY,
        DEFERRABLE,
    )
)
# The preflight exactly as Neon's proxy answers it (proxy/src/serverless/mod.rs): 200,
# no Allow-Methods (POST needs none), and these request headers only: no
# Content-Type (a browser page must send its JSON as the default text/plain, as
# Neon's driver does) and no Neon-Batch-Deferrable. A page that works here works
# there.
ALLOWED_HEADERS = ", ".join(
    (
        "Authorization",
        "Neon-Connection-String",
        "Neon-Raw-Text-Output",
        "Neon-Array-Mode",
        "Neon-Pool-Opt-In",
        "Neon-Batch-Read-Only",
        "Neon-Batch-Isolation-Level",
    )
)
_CORS = ("Access-Control-Allow-Origin", "*")
_PREFLIGHT: Headers = [
    ("Allow", "OPTIONS, POST"),
    _CORS,
    ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
    ("Access-Control-Max-Age", "86400"),
    ("Content-Length", "0"),
]


class SqlEndpoint:
    """Answers every method on `PATH` (POST, the OPTIONS preflight, 405 otherwise)."""

    def __init__(self, app: WSGIApp, flask_app: Flask) -> None:
        self.app = app
        # Looked up per request: the services are the Flask app's to replace.
        self.extensions = flask_app.extensions

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        return observed(self.extensions, PATH, environ, start_response, self._answer)

    def _answer(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        try:
            if method == "POST":
                return self._post(environ, start_response)
            if method == "OPTIONS":
                start_response("200 OK", _PREFLIGHT)
                return []
            raise ProxyError("The method is not allowed for the requested URL.", status=405)
        except ProxyError as error:
            return _error(start_response, error)
        except Exception:
            log.exception("internal error while serving /sql")
            return _error(start_response, ProxyError("internal error", status=500))

    def _post(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        services: Services = self.extensions["proxy"]
        config = services.config
        headers = {name: environ[key] for name, key in _READ if key in environ}
        target = parse_target(headers)
        if config.endpoint_hosts is not None and target.host not in config.endpoint_hosts:
            raise AuthError(UNKNOWN_ENDPOINT)
        token = parse_bearer(headers)
        options = parse_options(headers)
        limit = config.max_request_bytes
        if (get_content_length(environ) or 0) > limit:
            raise _too_large(limit)
        claims = services.validator.validate(token, target.role)
        body = get_input_stream(environ).read(limit + 1)
        if len(body) > limit:
            raise _too_large(limit)
        sql_request = parse_body(body, options)

        lease = services.pools.acquire(target)
        try:
            session_token = services.session_key.token(claims, lease.conn.info.backend_pid)
            results = execute(
                lease,
                session_token,
                sql_request,
                services.watchdog,
                config.request_timeout,
                config.max_response_bytes,
            )
        finally:
            # Reset in the request's own round trip: giving it back costs no wait.
            lease.release()
        payload: dict[str, Any] = {"results": results} if sql_request.batch else results[0]
        # Never refused: json and jsonb values are passed through as fragments, every
        # other value is a string, a small number or a bool.
        data = orjson.dumps(payload)
        if len(data) > config.max_response_bytes:
            raise ResponseTooLarge(config.max_response_bytes)
        response_headers = _json_headers(data)
        if sql_request.batch:
            response_headers += _batch_headers(sql_request, headers)
        start_response("200 OK", response_headers)
        return [data]


def _json_headers(body: bytes) -> Headers:
    return [("Content-Type", "application/json"), ("Content-Length", str(len(body))), _CORS]


def _error(start_response: StartResponse, error: ProxyError) -> Iterable[bytes]:
    body = json.dumps(error.body()).encode()
    headers = _json_headers(body)
    if error.status == 405:
        headers.append(("Allow", "OPTIONS, POST"))
    start_response(f"{error.status} {HTTPStatus(error.status).phrase}", headers)
    return [body]


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request is too large (max is {limit} bytes)")


def _batch_headers(sql_request: SqlRequest, headers: dict[str, str]) -> Headers:
    """Neon answers a batch with the transaction settings it applied."""
    echoed: Headers = []
    level = headers.get(ISOLATION_LEVEL)
    if sql_request.options.isolation and level:
        echoed.append((ISOLATION_LEVEL, level))
    for name in (READ_ONLY, DEFERRABLE):
        if headers.get(name) == "true":
            echoed.append((name, "true"))
    return echoed


def init_app(app: Flask) -> None:
    """Serve `/sql` in front of the app (and of any middleware already installed)."""
    app.wsgi_app = SqlEndpoint(app.wsgi_app, app)  # type: ignore[method-assign]
