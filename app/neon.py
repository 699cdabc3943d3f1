"""The Neon database, as the app reaches it: SQL over HTTP (one `neon_http`
client per request) or the Data API (`app.data_api`), as `APP_DATABASE_API`
says, always carrying the logged-in user's token.

Each thread keeps one `urllib3` pool so that connections to the SQL endpoint
stay alive across requests; each round trip's time is added to the request's
`Server-Timing` (`db`), which is how the benchmark tells the app's own overhead
from the database's.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import requests
import urllib3
from flask import current_app, g
from postgrest import SyncPostgrestClient

from app import data_api
from app.config import AppConfig
from app.todos import SqlTodos, Todos
from app.todos import database_view as sql_database_view
from neon_http import EndpointUnreachable, NeonHTTP, derive_endpoint

_local = threading.local()


def _record_timing(seconds: float) -> None:
    g.db_seconds = g.get("db_seconds", 0.0) + seconds


def pool_for(endpoint: str) -> urllib3.PoolManager:
    """Connections to `endpoint` with the settings the app's other outbound HTTP
    (`requests`, to the issuer) takes from the environment: an HTTP(S) proxy (with
    its credentials) unless NO_PROXY covers the endpoint, and REQUESTS_CA_BUNDLE /
    CURL_CA_BUNDLE (a file or a hashed directory), else requests' CA bundle."""
    ca = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or requests.certs.where()
    )
    trust = {"ca_cert_dir": ca} if os.path.isdir(ca) else {"ca_certs": ca}
    proxies = requests.utils.get_environ_proxies(endpoint)
    proxy = proxies.get(endpoint.split(":", 1)[0].lower()) or proxies.get("all")
    if not proxy:
        return urllib3.PoolManager(**trust)
    # As requests reads a proxy setting: `host:port` means http://, and the URL's
    # user:password go in Proxy-Authorization (urllib3 would drop them).
    proxy = requests.utils.prepend_scheme_if_needed(proxy, "http")
    user, password = requests.utils.get_auth_from_url(proxy)
    headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **trust)


def _pool() -> urllib3.PoolManager:
    """This thread's pool (its connections stay alive across requests)."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        endpoint = sql_endpoint(current_app.config["APP"])
        try:
            pool = _local.pool = pool_for(endpoint)
        except urllib3.exceptions.HTTPError as error:  # e.g. HTTPS_PROXY=socks5://…
            current_app.logger.error("no usable proxy for %s: %s", endpoint, error)
            raise EndpointUnreachable(f"no usable proxy for {endpoint}") from None
    return pool


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
        pool=_pool(),
        on_round_trip=_record_timing,
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
