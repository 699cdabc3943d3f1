"""Proxy configuration, read from the environment (and an optional `.env`)."""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from proxy.jwks import Clock
from proxy.rules import AuthRule, rules_from_env

MIB = 1024 * 1024
OWNER_ROLE = "neondb_owner"
DATABASE = "neondb"


@dataclass(frozen=True)
class ProxyConfig:
    """Everything `create_app` needs.

    `database_host` is a hostname or a unix-socket directory; `admin_url` is an
    owner connection used only to install and drop the session key.
    """

    database_host: str
    database_port: int
    admin_url: str
    auth_rules: list[AuthRule]
    statement_timeout_ms: int = 10_000
    request_timeout: float = 30.0
    pool_size: int = 8
    pool_timeout: float = 5.0
    max_request_bytes: int = 10 * MIB
    max_response_bytes: int = 10 * MIB
    max_token_bytes: int = 8 * 1024
    clock: Clock = field(default=time.time, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProxyConfig:
        env = os.environ if env is None else env
        host, port = env.get("PROXY_DATABASE_HOST"), env.get("PROXY_DATABASE_PORT")
        if host is None:
            host, default_port = _embedded_socket(env)
            port = port or str(default_port)
        port_number = int(port or 5432)
        admin_url = env.get("PROXY_ADMIN_URL") or (
            f"postgresql://{OWNER_ROLE}@/{DATABASE}"
            f"?host={urllib.parse.quote(host, safe='')}&port={port_number}"
        )
        return cls(
            database_host=host,
            database_port=port_number,
            admin_url=admin_url,
            auth_rules=rules_from_env(env),
            statement_timeout_ms=int(env.get("PROXY_STATEMENT_TIMEOUT_MS", 10_000)),
            request_timeout=float(env.get("PROXY_REQUEST_TIMEOUT", 30)),
            pool_size=int(env.get("PROXY_POOL_SIZE", 8)),
            pool_timeout=float(env.get("PROXY_POOL_TIMEOUT", 5)),
            max_request_bytes=int(env.get("PROXY_MAX_REQUEST_BYTES", 10 * MIB)),
            max_response_bytes=int(env.get("PROXY_MAX_RESPONSE_BYTES", 10 * MIB)),
            max_token_bytes=int(env.get("PROXY_MAX_TOKEN_BYTES", 8 * 1024)),
        )


def _embedded_socket(env: Mapping[str, str]) -> tuple[str, int]:
    """The socket directory and port of the embedded server under DATA_DIR."""
    from stack import postgres

    data_dir = Path(env.get("DATA_DIR", ".data")) / "pg"
    server = postgres.running(data_dir)
    if server is None:
        raise RuntimeError(
            f"no PostgreSQL is running under {data_dir} (run `make db-up`) "
            "and PROXY_DATABASE_HOST is not set"
        )
    return str(server.socket_dir), server.port
