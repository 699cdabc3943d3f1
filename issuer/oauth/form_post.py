"""/token and /revoke: authlib's endpoints, served in front of Flask.

/token is the issuer's busiest endpoint after the JWKS (every service, every
refresh), and its work is a form, a client, a grant and a signature. Through a
Flask view, the request context, routing, session, hooks and werkzeug's lazy
request properties cost as much again as the grant itself (measured in process:
about 355 us per client_credentials token through Flask, 200 here). So, like the
JWKS, these two endpoints are a WSGI middleware: the form is read and checked from
the environ (`params.read_form_post`), authlib runs its registered grants and
endpoints on an `OAuth2Request` built from it, inside an app context (what the
grants, the key ring and the audit trail use), and the answer carries the headers
every issuer response carries. Nothing else reaches Flask's views from these paths.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from authlib.common.security import is_secure_transport
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Flask, Response, g
from werkzeug.datastructures import EnvironHeaders, MultiDict
from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from issuer.oauth import params
from servicemetrics import observed, request_ids

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_SERVER_ERROR = orjson.dumps({"error": "server_error"})


class FormPayload(OAuth2Payload):
    """authlib's view of the parameters: the form (a query is refused)."""

    def __init__(self, form: MultiDict) -> None:
        self._form = form
        self._datalist = defaultdict(list, {name: form.getlist(name) for name in form})

    @property
    def data(self) -> MultiDict:
        return self._form

    @property
    def datalist(self) -> defaultdict[str, list]:
        return self._datalist


class FormPostRequest(OAuth2Request):
    """authlib's request for a checked form POST: headers and the URL from the
    environ, as Flask would give them (the URL for authlib's transport check; the
    host checked against TRUSTED_HOSTS when it is set, as Flask does)."""

    def __init__(
        self, environ: dict[str, Any], form: MultiDict, trusted_hosts: list[str] | None = None
    ) -> None:
        try:
            host = get_host(environ, trusted_hosts)
        except SecurityError:
            raise InvalidRequestError("The Host header names a host not served here.") from None
        scheme = environ["wsgi.url_scheme"]
        if not _secure_transport(scheme, host):
            raise InsecureTransportError()
        # OAuth2Request.__init__'s fields, set here rather than by calling it: its
        # transport check parses the URL and the host's address on every request (a
        # tenth of /token's Python time; cached above per scheme and host), and its
        # `headers or {}` counts the whole environ. tests/issuer/test_hot_paths.py
        # checks that these are all the fields it sets.
        self.method = environ["REQUEST_METHOD"]
        self.uri = (
            f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
        )
        self.headers = EnvironHeaders(environ)
        self._body = None
        self.payload = FormPayload(form)
        self.client = self.auth_method = self.user = None
        self.authorization_code = self.refresh_token = self.credential = None
        self._scope = None
        self._form = form

    @property
    def form(self) -> MultiDict:
        return self._form

    @property
    def args(self) -> MultiDict:
        return MultiDict()


def _secure_transport(scheme: str, host: str) -> bool:
    """authlib's verdict on a URL of this scheme and host (its path plays no part).
    AUTHLIB_INSECURE_TRANSPORT is read on every call, as authlib reads it: only the
    URL's verdict is cached, and only computed with the setting unset (the `or`
    stops first otherwise), so no verdict the setting forced is ever cached."""
    return bool(os.getenv("AUTHLIB_INSECURE_TRANSPORT")) or _secure_url(scheme, host)


@functools.lru_cache(maxsize=64)
def _secure_url(scheme: str, host: str) -> bool:
    """Bounded: the host is whatever a client sent."""
    return is_secure_transport(f"{scheme}://{host}/")


def _token(server: Any, request: FormPostRequest) -> Response:
    return server.create_token_response(request)


def _revocation(server: Any, request: FormPostRequest) -> Response:
    return server.create_endpoint_response("revocation", request)


#: Path -> how the AuthorizationServer answers it.
ENDPOINTS: dict[str, Callable[[Any, FormPostRequest], Response]] = {
    "/token": _token,
    "/revoke": _revocation,
}


class FormPostEndpoints:
    """Answers `ENDPOINTS` (405 for methods but POST); passes anything else to `app`."""

    def __init__(self, app: WSGIApp, flask_app: Flask) -> None:
        self.app = app
        self.flask_app = flask_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path not in ENDPOINTS:
            return self.app(environ, start_response)
        return observed(self.flask_app.extensions, path, environ, start_response, self._answer)

    def _answer(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = request_ids.chosen(environ.get("HTTP_X_REQUEST_ID"))
        with self.flask_app.app_context():
            g.request_id = request_id
            server = self.flask_app.extensions["oauth"]
            try:
                form = params.read_form_post(environ)
                request = FormPostRequest(environ, form, self.flask_app.config["TRUSTED_HOSTS"])
                response = ENDPOINTS[environ["PATH_INFO"]](server, request)
            except OAuth2Error as error:  # raised before authlib's own try blocks
                response = server.handle_error_response(None, error)
            except Exception:
                # What Flask does with it: raised under test, else logged and a 500.
                propagate = self.flask_app.config["PROPAGATE_EXCEPTIONS"]
                if propagate or (
                    propagate is None and (self.flask_app.testing or self.flask_app.debug)
                ):
                    raise
                self.flask_app.logger.exception("Exception on %s [POST]", environ["PATH_INFO"])
                response = Response(
                    _SERVER_ERROR,
                    500,
                    {"Cache-Control": "no-store", "Pragma": "no-cache"},
                    content_type="application/json",
                )
        # Written out here rather than by `response(environ, start_response)`: the body
        # is bytes and its headers final, werkzeug's generic path costs as much again.
        headers = response.headers.to_wsgi_list()
        headers.append((request_ids.HEADER, request_id))
        headers.append(("X-Content-Type-Options", "nosniff"))
        if response.status_code == 405:
            headers.append(("Allow", "POST"))
        start_response(response.status, headers)
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [response.get_data()]


def init_app(app: Flask) -> None:
    """Serve /token and /revoke in front of the app (and of middleware already installed)."""
    app.wsgi_app = FormPostEndpoints(app.wsgi_app, app)  # type: ignore[method-assign]
