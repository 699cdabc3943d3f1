"""A local stand-in for Neon's proxy: SQL over HTTP, authorized by the caller's JWT.

`create_app(config, session_key)` builds the Flask application; `python -m proxy`
serves it with granian (or gunicorn). The host in a client's `Neon-Connection-String` is not
used for routing: every request goes to the one configured Postgres
(`PROXY_DATABASE_HOST`/`PROXY_DATABASE_PORT`; `make run` and `make proxy` point
them at the embedded server).
"""

from __future__ import annotations

import atexit
import json

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from proxy.config import ProxyConfig
from proxy.errors import ProxyError
from proxy.services import Services
from proxy.session import SessionKey


def create_app(config: ProxyConfig | None = None, session_key: SessionKey | None = None) -> Flask:
    """The proxy application.

    Without `session_key`, a new one is generated and installed now and dropped at
    interpreter exit; a gunicorn master passes the key it installed for all workers.
    A pooled connection goes back to its pool, reset, before the response is
    handed to the server: what the server does with the body cannot hold it.
    """
    config = config or ProxyConfig.from_env()
    if session_key is None:
        session_key = SessionKey.generate()
        session_key.install(config.admin_url)
        atexit.register(session_key.drop, config.admin_url)

    app = Flask(__name__)
    app.extensions["proxy"] = Services.build(config, session_key)

    from proxy import data_api, metrics, sql

    sql.init_app(app)
    data_api.init_app(app)
    metrics.init_app(app)
    # Flask answers only what `/sql` does not: unknown paths, as JSON.
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_cors)
    return app


def _json_error(error: ProxyError) -> Response:
    return Response(json.dumps(error.body()), status=error.status, mimetype="application/json")


def _http_error(error: HTTPException) -> Response:
    return _json_error(ProxyError(error.description or error.name, status=error.code or 400))


def _cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
