"""Logged-in sessions and their tokens, refreshed before they expire.

A login is created once the authorization code has been exchanged and the ID
token validated. Its access token is what every database query carries, so
`fresh()` hands out one with at least `refresh_margin` seconds left,
refreshing it at the issuer when needed.

Refresh tokens rotate at the issuer and a reused one revokes the whole family
(logging the user out after the issuer's short reuse window), so two requests
of one browser must never refresh with the same token: a per-login lock
serialises refreshes across threads, workers and, on PostgreSQL, app hosts (an
advisory lock in the store; on SQLite a file lock), and whoever waited re-reads
the row first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from sqlalchemy import Engine, bindparam, delete, insert, select, text, update
from sqlalchemy.exc import OperationalError

from app.store import logins

# Every page reads its login: one statement built once, so that each read binds two
# values instead of building a query and computing its cache key (2/3 of the read).
_LIVE_LOGIN = select(logins).where(
    logins.c.id == bindparam("id"), logins.c.expires_at > bindparam("now")
)

# A refresh waiting longer than this for another one is treated as the issuer
# being unreachable, rather than hanging the page.
REFRESH_LOCK_TIMEOUT_S = 15.0


def secret_digest(secret: str) -> str:
    """How a login's cookie token is stored: its SHA-256 (256 random bits need no
    password KDF), so a leaked table cannot be replayed as cookies."""
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionExpired(Exception):
    """The login is gone or can no longer be refreshed: sign in again."""


class IssuerUnreachable(Exception):
    """The issuer did not answer (network error, timeout, 5xx)."""


@dataclass(frozen=True)
class Login:
    sub: str
    email: str | None
    name: str | None
    access_token: str
    refresh_token: str | None
    id_token: str | None
    access_expires_at: float

    @classmethod
    def from_row(cls, row: Any) -> Login:
        return cls(
            row.sub,
            row.email,
            row.name,
            row.access_token,
            row.refresh_token,
            row.id_token,
            row.access_expires_at,
        )


def _token_columns(token: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The columns a token response sets. A response without a new refresh
    token keeps the old one (RFC 6749 §6 allows either)."""
    expires_at = token.get("expires_at") or now + float(token.get("expires_in") or 0)
    columns = {"access_token": token["access_token"], "access_expires_at": float(expires_at)}
    if token.get("refresh_token"):
        columns["refresh_token"] = token["refresh_token"]
    if token.get("id_token"):
        columns["id_token"] = token["id_token"]
    return columns


class LoginStore:
    """Owns the `app_logins` rows; the cookie holds the login's random token."""

    def __init__(self, engine: Engine, lock_dir: Path, lifetime: int, refresh_margin: int) -> None:
        self.engine = engine
        self.lock_dir = lock_dir
        self.lifetime = lifetime
        self.refresh_margin = refresh_margin

    def create(self, token: Mapping[str, Any], userinfo: Mapping[str, Any]) -> str:
        """Store a new login; return the random token for the session cookie."""
        now = time.time()
        login_token = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(delete(logins).where(logins.c.expires_at <= now))
            row = {
                "id": secret_digest(login_token),
                "sub": str(userinfo["sub"]),
                "email": userinfo.get("email"),
                "name": userinfo.get("name"),
                "refresh_token": None,
                "id_token": None,
                "created_at": now,
                "expires_at": now + self.lifetime,
            }
            conn.execute(insert(logins).values({**row, **_token_columns(token, now)}))
        return login_token

    def get(self, login_token: str) -> Login | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                _LIVE_LOGIN, {"id": secret_digest(login_token), "now": time.time()}
            ).first()
        return None if row is None else Login.from_row(row)

    def delete(self, login_token: str) -> Login | None:
        """End a login; return what it held (for logging out at the issuer)."""
        login = self.get(login_token)
        with self.engine.begin() as conn:
            conn.execute(delete(logins).where(logins.c.id == secret_digest(login_token)))
        self._lock_path(login_token).unlink(missing_ok=True)
        return login

    def fresh(self, login_token: str, refresh: Callable[[str], Mapping[str, Any]]) -> Login:
        """The login with an access token good for `refresh_margin` more seconds.

        `refresh(refresh_token)` asks the issuer for new tokens; it raises
        SessionExpired when the issuer refuses and IssuerUnreachable when it
        cannot be asked.
        """
        login = self.get(login_token)
        if login is None:
            raise SessionExpired("no such login")
        if login.access_expires_at - time.time() > self.refresh_margin:
            return login
        try:
            with self._serialised(login_token):
                # Another request may have refreshed while we waited.
                login = self.get(login_token)
                if login is None:
                    raise SessionExpired("no such login")
                if login.access_expires_at - time.time() > self.refresh_margin:
                    return login
                if not login.refresh_token:
                    self.delete(login_token)
                    raise SessionExpired("the access token expired and there is no refresh token")
                try:
                    token = refresh(login.refresh_token)
                except SessionExpired:
                    self.delete(login_token)
                    raise
                columns = _token_columns(token, time.time())
                with self.engine.begin() as conn:
                    updated = conn.execute(
                        update(logins)
                        .where(logins.c.id == secret_digest(login_token))
                        .values(**columns)
                    ).rowcount
                if not updated:  # logged out while the refresh was in flight
                    raise SessionExpired("no such login")
                return dataclasses.replace(login, **columns)
        except (Timeout, RefreshLockTimeout):
            raise IssuerUnreachable("a token refresh for this session is stuck") from None

    def _serialised(self, login_token: str) -> AbstractContextManager[object]:
        """One refresh of a login at a time, across every app process sharing the
        store: on PostgreSQL an advisory lock in the store itself (app hosts share
        nothing else), on SQLite (one host) a file lock next to it."""
        if self.engine.dialect.name == "postgresql":
            key = hashlib.sha256(b"refresh:" + login_token.encode()).digest()[:8]
            return _advisory_lock(self.engine, int.from_bytes(key, "big", signed=True))
        self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return FileLock(self._lock_path(login_token), timeout=REFRESH_LOCK_TIMEOUT_S)

    def _lock_path(self, login_token: str) -> Path:
        name = hashlib.sha256(b"lock:" + login_token.encode()).hexdigest()[:32]
        return self.lock_dir / f"{name}.lock"


class RefreshLockTimeout(Exception):
    """Another process has been refreshing this login for too long."""


@contextmanager
def _advisory_lock(engine: Engine, key: int) -> Iterator[None]:
    """A transaction-scoped advisory lock: released at the end of the block, and by
    PostgreSQL itself if this process dies holding it."""
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL lock_timeout = {int(REFRESH_LOCK_TIMEOUT_S * 1000)}"))
        try:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        except OperationalError:
            raise RefreshLockTimeout from None
        yield
