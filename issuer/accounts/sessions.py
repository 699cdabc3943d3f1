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

from flask import Flask, Request, Response, current_app, g, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import delete, insert, select

from issuer.accounts.models import User, login_sessions, users
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


def login_user(user: User) -> None:
    """Replace whatever session the browser had with a new one for `user`."""
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
                id=secret_digest(token), user_id=user.id, created_at=now, expires_at=now + lifetime
            )
        )
    mark = session.get(REAUTH_MARK)
    session.clear()
    session.permanent = True
    session[_SESSION_KEY] = token
    if mark is not None:
        session[REAUTH_MARK] = mark
    g.pop("_login", None)


def logout_user() -> None:
    """End the current login session (server-side too) and clear the cookie."""
    token = session.get(_SESSION_KEY)
    if isinstance(token, str):
        with get_engine().begin() as conn:
            conn.execute(delete(login_sessions).where(login_sessions.c.id == secret_digest(token)))
    session.clear()
    g.pop("_login", None)


def _current_login() -> tuple[User, float] | None:
    """(user, login time) for this request, read once and cached on `g`."""
    if "_login" in g:
        return g._login
    found = None
    token = session.get(_SESSION_KEY)
    if isinstance(token, str):
        query = (
            select(users, login_sessions.c.created_at.label("logged_in_at"))
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
            found = (User.from_row(row), row.logged_in_at)
    g._login = found
    return found


def current_user() -> User | None:
    """The logged-in user, or None (anonymous, expired, logged out, disabled)."""
    login = _current_login()
    return login[0] if login else None


def authenticated_at() -> int | None:
    """When the current user entered their password (epoch seconds), for the
    OpenID Connect `auth_time` claim and `max_age` checks."""
    login = _current_login()
    return int(login[1]) if login else None
