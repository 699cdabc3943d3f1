"""User accounts: storage, passwords, throttling, login pages and `users` CLI.

What the rest of the issuer uses (the OAuth endpoints in particular):

    current_user() -> User | None     the logged-in user of this request
    authenticated_at() -> int | None  when they logged in (OIDC auth_time)
    authentication_methods()          how they proved themselves (OIDC amr)
    login_url(next_url) -> str        where to send an anonymous browser
    logout_user()                     end the issuer session
    get_user(user_id) -> User | None  by `sub`
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, request, url_for

from issuer.accounts import users as _users
from issuer.accounts.models import User
from issuer.accounts.redirects import local_part
from issuer.accounts.sessions import (
    LoginSessionInterface,
    authenticated_at,
    authentication_methods,
    current_user,
    logout_user,
)
from issuer.db import get_engine
from private_files import load_or_create_secret

#: Signs the issuer's session cookies and CSRF tokens unless ISSUER_SECRET_KEY is set.
SECRET_KEY_FILE = "issuer-secret-key"  # noqa: S105 (a file name)

__all__ = [
    "User",
    "authenticated_at",
    "authentication_methods",
    "current_user",
    "get_user",
    "init_app",
    "login_url",
    "logout_user",
]


def get_user(user_id: str) -> User | None:
    """The user whose `sub` is `user_id`, disabled or not (check `.disabled`)."""
    return _users.get_user(get_engine(), user_id)


def login_url(next_url: str) -> str:
    """The login page, returning to `next_url` (a local path such as
    `request.full_path`, or an absolute URL on this origin) afterwards."""
    return url_for("accounts.login", next=local_part(next_url, request.host_url))


def init_app(app: Flask) -> None:
    """Session cookie, secret key, CSRF, pages and the `users` CLI group."""
    from issuer.accounts.cli import users_cli
    from issuer.accounts.views import init_views

    config = app.config["ISSUER"]
    app.config.update(
        SECRET_KEY=config.secret_key or load_or_create_secret(config.data_dir, SECRET_KEY_FILE),
        # The todo app runs on the same host: a distinct name keeps the two
        # sessions apart (cookies do not separate ports).
        SESSION_COOKIE_NAME="issuer_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.issuer_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=config.session_lifetime),
    )
    app.session_interface = LoginSessionInterface()
    init_views(app)
    app.cli.add_command(users_cli)
