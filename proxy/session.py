"""The proxy's session key and the short internal token handed to each Postgres session.

Locally there is no `pg_session_jwt`: after validating the client's JWT, the
proxy signs its claims plus the backend pid with a secret that only it and the
owner-only `auth_private` schema know (HS256), and `auth.jwt_session_init($1)`
checks that signature. The secret is new at every proxy start.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import psycopg

INSTALL = "select auth_private.install_session_key(%s::text, %s::bytea)"
DROP = "select auth_private.drop_session_key(%s::text)"


# Built once: json.dumps() with options builds a new encoder on every call.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SessionKey:
    kid: str
    secret: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> SessionKey:
        return cls(kid=f"proxy-{secrets.token_urlsafe(12)}", secret=secrets.token_bytes(32))

    @cached_property
    def _header(self) -> str:
        """The same for every token this key signs, so encoded once."""
        return _b64(_COMPACT.encode({"alg": "HS256", "typ": "JWT", "kid": self.kid}).encode())

    def token(self, claims: dict[str, Any], pid: int) -> str:
        payload = _b64(_COMPACT.encode({**claims, "pid": pid}).encode())
        signing_input = f"{self._header}.{payload}"
        mac = hmac.digest(self.secret, signing_input.encode(), "sha256")
        return f"{signing_input}.{_b64(mac)}"

    def install(self, admin_url: str) -> None:
        """Store the secret in `auth_private` through an owner connection."""
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(INSTALL, (self.kid, self.secret))

    def drop(self, admin_url: str) -> None:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(DROP, (self.kid,))
