"""`/<database>/rest/v1/…`: Neon's Data API (PostgREST-compatible), as WSGI middleware.

How Neon serves it (proxy/src/serverless/rest.rs): the bearer JWT is validated by
the same rules as `/sql` (JWKS, `kid`, audience), for the role `authenticator`;
the request runs in one transaction on a connection of `authenticator`, which
switches to the role the token's `role` claim names (the anonymous role when it
names none) and sets `request.jwt.claims` and the other `request.*` settings for
the statement. Postgres decides whether `authenticator` may become that role (it
is a member of `authenticated` and `anonymous` only).

Identity for RLS comes, as on `/sql`, from the proxy's signed session hand-off
(`auth.jwt_session_init`): `request.jwt.claims` is set for PostgREST-style
policies, but the local `auth` schema never trusts it, because on `/sql` users can
write any setting.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import psycopg
from flask import Flask
from werkzeug.wsgi import get_content_length, get_input_stream

from proxy.data_api import compile as build
from proxy.data_api.catalog import MISS_MAX_AGE, Catalog
from proxy.data_api.errors import ApiError, bad_request, from_postgres
from proxy.data_api.query import RESERVED, parse
from proxy.errors import AuthError, ProxyError
from proxy.pipeline import SESSION_INIT, run
from proxy.protocol import Target
from proxy.services import Services
from servicemetrics import observed

log = logging.getLogger(__name__)

PATH = re.compile(r"^/([A-Za-z0-9_-]{1,63})/rest/v1/(.*)$")
ROLE = "authenticator"
ANONYMOUS_ROLE = "anonymous"
OBJECT = "application/vnd.pgrst.object+json"
METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"
EXPOSED = "Content-Encoding, Content-Location, Content-Range, Content-Type, Location, Range-Unit"
_SETTINGS = (
    b"SELECT set_config('role', $1, true), set_config('search_path', $2, true),"
    b" set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true),"
    b" set_config('request.path', $5, true), set_config('request.headers', $6, true),"
    b" set_config('request.get', $7, true)"
)
#: Request headers passed on as `request.headers` (never the bearer token).
_FORWARDED = ("HTTP_ACCEPT", "HTTP_PREFER", "HTTP_RANGE", "HTTP_USER_AGENT", "CONTENT_TYPE")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class DataApiEndpoint:
    def __init__(self, app: WSGIApp, flask_app: Flask) -> None:
        self.app = app
        self.extensions = flask_app.extensions
        self.catalog = Catalog()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = PATH.match(environ.get("PATH_INFO", ""))
        if match is None:
            return self.app(environ, start_response)
        # One route for every database and table, as PostgREST's own metrics do.
        return observed(
            self.extensions,
            "/<database>/rest/v1/<path>",
            environ,
            start_response,
            lambda env, respond: self._respond(env, respond, match),
        )

    def _respond(
        self, environ: dict[str, Any], start_response: StartResponse, match: re.Match[str]
    ) -> Iterable[bytes]:
        try:
            if environ["REQUEST_METHOD"] == "OPTIONS":
                return _preflight(environ, start_response)
            return self._serve(environ, start_response, match.group(1), match.group(2))
        except ApiError as error:
            return _answer(start_response, error.status, error.body())
        except ProxyError as error:  # the pool, the backend, the token
            status = 401 if isinstance(error, AuthError) else error.status
            code = error.code or ("PGRST301" if status == 401 else "PGRST000")
            return _answer(start_response, status, ApiError(status, code, error.message).body())
        except Exception:
            log.exception("internal error while serving the Data API")
            return _answer(start_response, 500, ApiError(500, "PGRST000", "internal error").body())

    def _serve(
        self, environ: dict[str, Any], start_response: StartResponse, database: str, rest: str
    ) -> Iterable[bytes]:
        services: Services = self.extensions["proxy"]
        config = services.config
        method = environ["REQUEST_METHOD"]
        host = (environ.get("HTTP_HOST") or "").rsplit(":", 1)[0].lower()
        if config.endpoint_hosts is not None and host.strip("[]") not in config.endpoint_hosts:
            raise ApiError(404, "PGRST000", "endpoint cannot be found")
        schema_name = _profile(environ, method, config.data_api_schemas)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if not authorization.startswith("Bearer "):
            raise ApiError(401, "PGRST302", "missing authentication credentials: a JWT is required")
        claims = services.validator.validate(authorization.removeprefix("Bearer "), ROLE)
        role = claims.get("role") if isinstance(claims.get("role"), str) else ANONYMOUS_ROLE
        params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        body = _body(environ, method, config.max_request_bytes)
        prefer = _prefer(environ)

        lease = services.pools.acquire(Target(role=ROLE, database=database))
        try:
            conn = lease.conn
            try:
                schema = self.catalog.schema(conn, database, schema_name)
                try:
                    statements, status = _statements(
                        schema, method, rest, params, body, prefer, environ
                    )
                except ApiError as error:
                    if error.code not in ("PGRST205", "PGRST202"):
                        raise
                    schema = self.catalog.schema(conn, database, schema_name, MISS_MAX_AGE)
                    statements, status = _statements(
                        schema, method, rest, params, body, prefer, environ
                    )
            except psycopg.Error as error:
                raise from_postgres(error, role == ANONYMOUS_ROLE) from None
            session = services.session_key.token(claims, conn.info.backend_pid)
            settings = [
                role, f'"{schema_name}"', json.dumps(claims), method,
                environ.get("PATH_INFO", ""), json.dumps(_forwarded(environ)),
                json.dumps(dict(params)),
            ]  # fmt: skip
            read_only = method in ("GET", "HEAD")
            commands = [
                (b"BEGIN ISOLATION LEVEL READ COMMITTED" + (b" READ ONLY" if read_only else b""), None),
                (SESSION_INIT, [session.encode()]),
                (_SETTINGS, [value.encode() for value in settings]),
                *((s.sql.encode(), [None if p is None else p.encode() for p in s.params])
                  for s in statements),
                (b"COMMIT", None),
            ]  # fmt: skip
            results, failed = run(lease, commands, services.watchdog, config.request_timeout)
            if failed is not None:  # the transaction is rolled back when the lease returns
                error = psycopg.errors.error_from_result(failed, encoding=conn.info.encoding)
                if failed is results[1]:
                    conn.close()  # the session hand-off failed: a deployment problem
                if failed is results[2]:  # no such role, or one authenticator may not become
                    raise ApiError(
                        401, error.sqlstate or "42501", f"the token's role {role!r} is not allowed"
                    )
                raise from_postgres(error, role == ANONYMOUS_ROLE)
            main = results[3]
            text, touched = main.get_value(0, 0), int(main.get_value(0, 1) or b"0")
            total = int(results[4].get_value(0, 1)) if len(statements) > 1 else None
            return _respond(start_response, environ, method, status, text, touched, total, params)
        finally:
            lease.release()


def init_app(app: Flask) -> None:
    app.wsgi_app = DataApiEndpoint(app.wsgi_app, app)  # type: ignore[method-assign]


def _statements(schema, method, rest, params, body, prefer, environ) -> tuple[list, int]:
    """The statements of one request, and the status of its success."""
    representation = prefer.get("return") == "representation"
    if rest.startswith("rpc/"):
        function = build.function(schema, rest[4:])
        if method == "GET" or method == "HEAD":
            arguments = {k: v for k, v in params if k not in RESERVED}
        elif method == "POST":
            arguments = body if isinstance(body, dict) else None
            if arguments is None:
                raise bad_request("PGRST102", "the body must be a JSON object of arguments")
        else:
            raise ApiError(405, "PGRST117", f"{method} is not allowed on a function")
        return [build.call(schema, function, arguments)], 200
    if not rest or "/" in rest:
        raise ApiError(404, "PGRST125", f"invalid path: {rest[:40]!r}")
    table = build.relation(schema, rest)
    query = parse(params)
    if method in ("GET", "HEAD"):
        _apply_range(query, environ.get("HTTP_RANGE"))
        return build.read(schema, table, query, prefer.get("count") is not None), 200
    if method == "POST":
        return [build.insert(schema, table, query, body, representation)], 201
    if method == "PATCH":
        return [build.update(schema, table, query, body, representation)], (
            200 if representation else 204
        )
    if method == "DELETE":
        return [build.delete(schema, table, query, representation)], (
            200 if representation else 204
        )
    raise ApiError(405, "PGRST117", f"{method} is not supported")


def _respond(start_response, environ, method, status, text, touched, total, params) -> list[bytes]:
    headers = [("Content-Type", "application/json; charset=utf-8")]
    if environ.get("HTTP_ACCEPT", "").startswith(OBJECT) and text is not None:
        rows = json.loads(text)
        if len(rows) != 1:
            raise ApiError(
                406,
                "PGRST116",
                "JSON object requested, multiple (or no) rows returned",
                f"The result contains {len(rows)} rows",
            )
        text = json.dumps(rows[0]).encode()
        headers = [("Content-Type", f"{OBJECT}; charset=utf-8")]
    if method in ("GET", "HEAD"):
        offset = _offset(params, environ)
        first_last = f"{offset}-{offset + touched - 1}" if touched else "*"
        headers.append(("Content-Range", f"{first_last}/{'*' if total is None else total}"))
        if total is not None and touched and offset + touched < total:
            status = 206  # a page of a longer result, as PostgREST says it
    else:
        headers.append(("Content-Range", f"*/{touched}"))
    body = b"" if text is None or method == "HEAD" else bytes(text)
    if status == 204:
        body = b""
    headers += [("Content-Length", str(len(body))), *_cors_headers()]
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]


def _offset(params: list[tuple[str, str]], environ: dict[str, Any]) -> int:
    for key, value in params:
        if key == "offset" and value.isdigit():
            return int(value)
    start = _range(environ.get("HTTP_RANGE"))
    return start[0] if start else 0


def _apply_range(query, header: str | None) -> None:
    """`Range: first-last` (PostgREST's pagination header) where no `limit` is given."""
    bounds = _range(header)
    if bounds is None or query.limit is not None:
        return
    first, last = bounds
    query.offset = first
    if last is not None:
        query.limit = max(0, last - first + 1)


def _range(header: str | None) -> tuple[int, int | None] | None:
    if not header:
        return None
    match = re.fullmatch(r"\s*(?:items=)?(\d{1,9})-(\d{0,9})\s*", header)
    if match is None:
        raise ApiError(416, "PGRST103", "Requested range not satisfiable")
    first, last = int(match.group(1)), match.group(2)
    if last and int(last) < first:
        raise ApiError(416, "PGRST103", "Requested range not satisfiable")
    return first, int(last) if last else None


def _profile(environ: dict[str, Any], method: str, schemas: tuple[str, ...]) -> str:
    header = "HTTP_ACCEPT_PROFILE" if method in ("GET", "HEAD") else "HTTP_CONTENT_PROFILE"
    wanted = environ.get(header) or schemas[0]
    if wanted not in schemas:
        raise ApiError(
            406,
            "PGRST106",
            f"The schema must be one of the following: {', '.join(schemas)}",
        )
    return wanted


def _prefer(environ: dict[str, Any]) -> dict[str, str]:
    prefer: dict[str, str] = {}
    for part in environ.get("HTTP_PREFER", "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            prefer[name] = value
    return prefer


def _body(environ: dict[str, Any], method: str, limit: int) -> Any:
    if method not in ("POST", "PATCH"):
        return None
    if (get_content_length(environ) or 0) > limit:
        raise ApiError(413, "PGRST413", f"request is too large (max is {limit} bytes)")
    raw = get_input_stream(environ).read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "PGRST413", f"request is too large (max is {limit} bytes)")
    try:
        return json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise bad_request("PGRST102", "the body is not valid JSON") from None


def _forwarded(environ: dict[str, Any]) -> dict[str, str]:
    return {
        key.removeprefix("HTTP_").lower().replace("_", "-"): environ[key]
        for key in _FORWARDED
        if key in environ
    }


def _cors_headers() -> list[tuple[str, str]]:
    return [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", EXPOSED)]


def _preflight(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """As Neon's Data API answers it: the methods it serves, the headers asked for plus
    Authorization, for a day."""
    asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "").strip()
    allowed = f"{asked}, Authorization" if asked else "Authorization"
    start_response(
        "200 OK",
        [
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Methods", METHODS),
            ("Access-Control-Allow-Headers", allowed),
            ("Access-Control-Max-Age", "86400"),
            ("Content-Length", "0"),
        ],
    )
    return []


def _answer(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Length", str(len(data))),
    ]
    start_response(f"{status} {HTTPStatus(status).phrase}", headers + _cors_headers())
    return [data]
