"""Fixtures for the database-side tests: role connections and proxy-style session tokens.

The proxy is not involved: a test plays its part by installing a session key
over the owner connection and signing the internal HS256 token itself, bound
to the backend pid of the connection it then initialises.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from stack.migrate import LocalDatabase

CONNECT_TIMEOUT_S = 10


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class SessionKey:
    """A proxy's session key: signs internal tokens the way the contract says."""

    kid: str
    secret: bytes

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        header = header if header is not None else {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(claims))}"
        mac = hmac.new(self.secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    def token_for(self, conn: psycopg.Connection, **claims: Any) -> str:
        """A token for `conn`'s backend, valid for a minute unless `claims` say otherwise."""
        return self.sign({"exp": int(time.time()) + 60, "pid": conn.info.backend_pid} | claims)


Connect = Callable[[str], psycopg.Connection]


@pytest.fixture
def connect(neon_db: LocalDatabase) -> Iterator[Connect]:
    """Open autocommit connections to `neondb` as a role ("postgres" is the superuser)."""
    opened: list[psycopg.Connection] = []

    def open_as(role: str) -> psycopg.Connection:
        url = neon_db.superuser_url if role == "postgres" else neon_db.role_url(role)
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        conn.execute("SET statement_timeout = '10s'")
        opened.append(conn)
        return conn

    yield open_as
    for conn in opened:
        conn.close()


def install_key(neon_db: LocalDatabase) -> SessionKey:
    key = SessionKey(kid=secrets.token_urlsafe(8), secret=secrets.token_bytes(32))
    with psycopg.connect(neon_db.owner_url, autocommit=True) as owner:
        owner.execute(
            "SELECT auth_private.install_session_key(%s::text, %s::bytea)", [key.kid, key.secret]
        )
    return key


@pytest.fixture(scope="session")
def session_key(neon_db: LocalDatabase) -> Iterator[SessionKey]:
    """A session key installed for the whole test session, dropped at the end."""
    key = install_key(neon_db)
    yield key
    with psycopg.connect(neon_db.owner_url, autocommit=True) as owner:
        owner.execute("SELECT auth_private.drop_session_key(%s::text)", [key.kid])


@pytest.fixture
def fresh_key(neon_db: LocalDatabase) -> Iterator[SessionKey]:
    """A session key of this test's own, dropped afterwards (if the test has not)."""
    key = install_key(neon_db)
    yield key
    with psycopg.connect(neon_db.owner_url, autocommit=True) as owner:
        owner.execute("SELECT auth_private.drop_session_key(%s::text)", [key.kid])


@pytest.fixture
def login(connect: Connect, session_key: SessionKey) -> Callable[..., psycopg.Connection]:
    """A direct `authenticated` connection whose session says `sub` (as the proxy would)."""

    def login_as(sub: str, role: str = "authenticated", **claims: Any) -> psycopg.Connection:
        conn = connect(role)
        token = session_key.token_for(conn, sub=sub, **claims)
        conn.execute("SELECT auth.jwt_session_init(%s)", [token])
        return conn

    return login_as


@pytest.fixture
def alice() -> str:
    """A fresh subject, so tests sharing the session's `todos` never see each other's rows."""
    return f"alice-{secrets.token_hex(8)}"


@pytest.fixture
def bob() -> str:
    return f"bob-{secrets.token_hex(8)}"
