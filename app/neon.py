"""The Neon database, as the app reaches it: SQL over HTTP (one `neon_http`
client per request) or the Data API (`app.data_api`), as `APP_DATABASE_API`
says, always carrying the logged-in user's token.

Each thread keeps one `requests.Session` so that connections to the SQL
endpoint stay alive across requests; a response hook adds each round trip's
time to the request's `Server-Timing` (`db`), which is how the benchmark tells
the app's own overhead from the database's.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import requests
from flask import current_app, g
from postgrest import SyncPostgrestClient

from app import data_api
from app.config import AppConfig
from app.todos import SqlTodos, Todos
from app.todos import database_view as sql_database_view
from neon_http import NeonHTTP, derive_endpoint

_local = threading.local()


def _record_timing(response: requests.Response, *_args: object, **_kwargs: object) -> None:
    g.db_seconds = g.get("db_seconds", 0.0) + response.elapsed.total_seconds()


def _http() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.hooks["response"].append(_record_timing)
        # The environment's proxy and CA settings, read once for the database's
        # endpoint rather than on every request (a fifth of the client's own time);
        # nor may a ~/.netrc entry replace the user's bearer token.
        endpoint = sql_endpoint(current_app.config["APP"])
        session.proxies = requests.utils.get_environ_proxies(endpoint)
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
            "CURL_CA_BUNDLE", True
        )
        session.trust_env = False
        _local.session = session
    return session


def sql_endpoint(config: AppConfig) -> str:
    """The endpoint the app (and the browser console) sends SQL to."""
    return config.sql_endpoint or derive_endpoint(
        config.database_authenticated_url, with_token=True
    )


def client(access_token: str) -> NeonHTTP:
    config: AppConfig = current_app.config["APP"]
    return NeonHTTP(
        config.database_authenticated_url,
        auth_token=access_token,
        endpoint=sql_endpoint(config),
        timeout=config.http_timeout,
        session=_http(),
    )


def todos(access_token: str) -> Todos:
    """The logged-in user's todos, over the configured path."""
    config: AppConfig = current_app.config["APP"]
    if config.database_api == "data_api":
        return data_api.DataApiTodos(_data_api(config, access_token))
    return SqlTodos(client(access_token))


def database_view(access_token: str) -> dict[str, Any]:
    config: AppConfig = current_app.config["APP"]
    if config.database_api == "data_api":
        return data_api.database_view(_data_api(config, access_token))
    return sql_database_view(client(access_token))


def _data_api(config: AppConfig, access_token: str) -> SyncPostgrestClient:
    assert config.data_api_url  # AppConfig.check() refuses data_api without it
    return data_api.client(config.data_api_url, access_token, config.http_timeout)
