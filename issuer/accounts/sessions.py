"""Login sessions, kept server-side.

The `issuer_session` cookie (Flask's signed session) carries only a random
token; the database holds its SHA-256 with the user and an expiry. Logging
out or disabling a user therefore ends the session everywhere, even for a
copy of the cookie, and every login starts a brand-new token (no session
fixation).

`LoginSessionInterface` keeps Flask's signed cookie but makes a request that
carries none (every OAuth client call: /token, the JWKS, discovery) pay
nothing for it.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask, Request, Response, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import delete, insert, select

from issuer.accounts import sealing
from issuer.accounts.models import User, login_sessions, users
from issuer.accounts.throttle import address_key
from issuer.db import get_engine, secret_digest

_SESSION_KEY = "login"
#: The one session entry a login keeps: when an authorization request asked for a
#: fresh login (`issuer.oauth.prompts`). It belongs to the request in progress, and
#: the login it asked for is what happens next.
REAUTH_MARK = "reauth"


class LoginSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, minus its per-request overheads.

    Flask builds a new signing serializer for every request and saves the
    session after every response; without a cookie, and with nothing written,
    both are pure cost (a fifth of a /token request). Behaviour is Flask's:
    the same cookie format, an empty session when the cookie is absent or
    forged, `Vary: Cookie` whenever the session was read.
    """

    def __init__(self) -> None:
        self._serializer: tuple[tuple[object, ...], URLSafeTimedSerializer] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's serializer, built once per set of keys instead of per request."""
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._serializer
        if cached is not None and cached[0] == keys:
            return cached[1]
        serializer = super().get_signing_serializer(app)
        if serializer is not None:
            self._serializer = (keys, serializer)
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if session.accessed or session.modified or session:
            super().save_session(app, session, response)


def login_user(user: User, amr: Iterable[str] = ("pwd",), auth_time: float | None = None) -> None:
    """Replace whatever session the browser had with a new one for `user`, who
    proved themselves by `amr` (RFC 8176 method names) at `auth_time` (now unless
    the new session only carries on an older login)."""
    now = time.time()
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    previous = session.get(_SESSION_KEY)
    token = secrets.token_urlsafe(32)
    with get_engine().begin() as conn:
        stale = login_sessions.c.expires_at <= now
        if isinstance(previous, str):
            stale = stale | (login_sessions.c.id == secret_digest(previous))
        conn.execute(delete(login_sessions).where(stale))
        conn.execute(
            insert(login_sessions).values(
                id=secret_digest(token),
                user_id=user.id,
                created_at=now if auth_time is None else auth_time,
                expires_at=now + lifetime,
                amr=" ".join(amr),
                user_agent=(request.user_agent.string or None) and request.user_agent.string[:200],
                address=address_key(request.remote_addr),
            )
        )
    mark = session.get(REAUTH_MARK)
    session.clear()
    session.permanent = True
    session[_SESSION_KEY] = token
    if mark is not None:
        session[REAUTH_MARK] = mark
    g.pop("_login", None)


_SIGNED_UP = "signed_up"
_SIGNED_UP_PURPOSE = "signed up in this browser"


def remember_sign_up(user_id: str | None) -> None:
    """Mark this browser as the one that signed up `user_id`, so that the mailed
    confirmation link signs in here and nowhere else. A sign-up with a taken
    address (None) gets a mark just like it, for a random owner: the cookies of
    the two answers cannot be told apart."""
    session[_SIGNED_UP] = sealing.seal(_SIGNED_UP_PURPOSE, user_id or str(uuid.uuid4()))


def signed_up_here(user_id: str) -> bool:
    mark = session.get(_SIGNED_UP)
    if not isinstance(mark, str):
        return False
    try:
        return sealing.unseal(mark, user_id) == _SIGNED_UP_PURPOSE
    except (sealing.SealError, ValueError):
        return False


def logout_user() -> None:
    """End the current login session (server-side too) and clear the cookie."""
    token = session.get(_SESSION_KEY)
    if isinstance(token, str):
        with get_engine().begin() as conn:
            conn.execute(delete(login_sessions).where(login_sessions.c.id == secret_digest(token)))
    session.clear()
    g.pop("_login", None)


@dataclass(frozen=True)
class Login:
    user: User
    at: float
    amr: tuple[str, ...]
    session_id: str


def _current_login() -> Login | None:
    """This request's login, read once and cached on `g`."""
    if "_login" in g:
        return g._login
    found = None
    token = session.get(_SESSION_KEY)
    if isinstance(token, str):
        query = (
            select(
                users,
                login_sessions.c.created_at.label("logged_in_at"),
                login_sessions.c.amr.label("login_amr"),
                login_sessions.c.id.label("login_session_id"),
            )
            .join(login_sessions, login_sessions.c.user_id == users.c.id)
            .where(
                login_sessions.c.id == secret_digest(token),
                login_sessions.c.expires_at > time.time(),
                users.c.disabled.is_(False),
            )
        )
        with get_engine().connect() as conn:
            row = conn.execute(query).first()
        if row is not None:
            found = Login(
                User.from_row(row),
                row.logged_in_at,
                tuple(row.login_amr.split()),
                row.login_session_id,
            )
    g._login = found
    return found


def current_user() -> User | None:
    """The logged-in user, or None (anonymous, expired, logged out, disabled)."""
    login = _current_login()
    return login.user if login else None


def authenticated_at() -> int | None:
    """When the current user entered their password (epoch seconds), for the
    OpenID Connect `auth_time` claim and `max_age` checks."""
    login = _current_login()
    return int(login.at) if login else None


def authentication_methods() -> tuple[str, ...]:
    """How the current user proved themselves (OIDC `amr`), empty when nobody is."""
    login = _current_login()
    return login.amr if login else ()


def current_session_id() -> str | None:
    """The stored id (digest) of this browser's session, to mark it on the account page."""
    login = _current_login()
    return login.session_id if login else None


@dataclass(frozen=True)
class SessionInfo:
    """A live login session as its owner sees it on the account page."""

    id: str
    created_at: float
    amr: tuple[str, ...]
    user_agent: str | None
    address: str | None


def list_sessions(user_id: str) -> list[SessionInfo]:
    t = login_sessions
    with get_engine().connect() as conn:
        rows = conn.execute(
            select(t.c.id, t.c.created_at, t.c.amr, t.c.user_agent, t.c.address)
            .where(t.c.user_id == user_id, t.c.expires_at > time.time())
            .order_by(t.c.created_at.desc())
        )
        return [
            SessionInfo(r.id, r.created_at, tuple(r.amr.split()), r.user_agent, r.address)
            for r in rows
        ]


def end_sessions(user_id: str, only: str | None = None, keep: str | None = None) -> int:
    """End `user_id`'s session `only`, or all of them but `keep`; how many ended."""
    t = login_sessions
    where = t.c.user_id == user_id
    if only is not None:
        where = where & (t.c.id == only)
    if keep is not None:
        where = where & (t.c.id != keep)
    with get_engine().begin() as conn:
        return conn.execute(delete(t).where(where)).rowcount
