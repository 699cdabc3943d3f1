"""Proxy settings, read once from the environment (and an optional `.env`).

Every setting is documented in the README with its default; `from_env` checks each
(`envsettings.SettingError`, one line). The proxy knows nothing of the local
stack: where PostgreSQL is comes from `PROXY_DATABASE_HOST`/`PORT` (`make run`
and `make proxy` set them to the embedded server).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from envsettings import Env
from proxy.jwks import Clock
from proxy.rules import AuthRule, rules_from_env

MIB = 1024 * 1024
OWNER_ROLE = "neondb_owner"
DATABASE = "neondb"


@dataclass(frozen=True)
class ProxyConfig:
    """Everything `create_app` and the server need.

    `database_host` is a hostname or a unix-socket directory; `admin_url` is an
    owner connection used only to install and drop the session key.
    """

    database_host: str
    database_port: int
    admin_url: str
    auth_rules: list[AuthRule]
    host: str = "127.0.0.1"
    port: int = 4444
    # The HTTP server: "granian" or "gunicorn" (see bench/proxy.py for the choice).
    server: str = "granian"
    workers: int = 2
    threads: int = 8
    statement_timeout_ms: int = 10_000
    request_timeout: float = 30.0
    pool_size: int = 8
    pool_timeout: float = 5.0
    max_request_bytes: int = 10 * MIB
    max_response_bytes: int = 10 * MIB
    max_token_bytes: int = 8 * 1024
    # The endpoint hosts this proxy answers for (the connection string's host), as a
    # Neon region answers only for its endpoints; None answers for any.
    endpoint_hosts: frozenset[str] | None = None
    # The schemas the Data API exposes (the first is the default profile).
    data_api_schemas: tuple[str, ...] = ("public",)
    # Serve /metrics on the proxy's port (Neon serves its own on a private port).
    metrics: bool = True
    # ...or only on this bind (host:port), off the public one.
    metrics_bind: str | None = None
    clock: Clock = field(default=time.time, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxyConfig:
        env = Env(environ)
        host = env.text("PROXY_DATABASE_HOST", "localhost")
        port = env.integer("PROXY_DATABASE_PORT", 5432, maximum=65535)
        threads = env.integer("PROXY_THREADS", cls.threads)
        admin_url = env.optional("PROXY_ADMIN_URL") or (
            f"postgresql://{OWNER_ROLE}@/{DATABASE}"
            f"?host={urllib.parse.quote(host, safe='')}&port={port}"
        )
        return cls(
            database_host=host,
            database_port=port,
            admin_url=admin_url,
            auth_rules=rules_from_env(env.environ),
            host=env.text("PROXY_HOST", cls.host),
            port=env.integer("PROXY_PORT", cls.port, maximum=65535),
            server=env.choice("PROXY_SERVER", cls.server, ("granian", "gunicorn")),
            workers=env.integer("PROXY_WORKERS", cls.workers),
            threads=threads,
            statement_timeout_ms=env.integer(
                "PROXY_STATEMENT_TIMEOUT_MS", cls.statement_timeout_ms
            ),
            request_timeout=env.number("PROXY_REQUEST_TIMEOUT", cls.request_timeout, minimum=0.1),
            # One connection per request thread: a thread never waits for a connection.
            pool_size=env.integer("PROXY_POOL_SIZE", threads),
            pool_timeout=env.number("PROXY_POOL_TIMEOUT", cls.pool_timeout, minimum=0.1),
            max_request_bytes=env.integer("PROXY_MAX_REQUEST_BYTES", cls.max_request_bytes),
            max_response_bytes=env.integer("PROXY_MAX_RESPONSE_BYTES", cls.max_response_bytes),
            max_token_bytes=env.integer("PROXY_MAX_TOKEN_BYTES", cls.max_token_bytes),
            endpoint_hosts=endpoint_hosts(env),
            metrics=env.boolean("PROXY_METRICS", cls.metrics),
            metrics_bind=env.optional_bind("PROXY_METRICS_BIND"),
            data_api_schemas=tuple(
                name.strip()
                for name in env.text("PROXY_DATA_API_SCHEMAS", "public").split(",")
                if name.strip()
            ),
        )


def endpoint_hosts(env: Env) -> frozenset[str]:
    """PROXY_ENDPOINT_HOSTS (comma-separated), else localhost, 127.0.0.1 and the host
    of DATABASE_AUTHENTICATED_URL: a mistyped connection string fails here as on Neon."""
    listed = env.optional("PROXY_ENDPOINT_HOSTS")
    if listed is not None:
        return frozenset(h.strip().lower() for h in listed.split(",") if h.strip())
    hosts = {"localhost", "127.0.0.1"}
    app_url = env.optional("DATABASE_AUTHENTICATED_URL")
    host = urllib.parse.urlsplit(app_url).hostname if app_url else None
    if host:
        hosts.add(host)
    return frozenset(hosts)
