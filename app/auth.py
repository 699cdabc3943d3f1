"""Logging in and out at the issuer, and who the current user is.

The session cookie (`app_session`, HttpOnly) holds one random login token;
tokens live in `app_logins` (see app/logins.py). A successful login replaces
whatever session the browser had (no session fixation); logging out deletes
the login here, revokes its refresh token and ends the issuer's session too
(RP-initiated logout), so that "Log in" asks for a password again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.common.errors import AuthlibBaseError
from flask import Blueprint, current_app, flash, g, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError
from requests import RequestException
from werkzeug.wrappers import Response

from app import oidc
from app.config import AppConfig
from app.logins import IssuerUnreachable, Login, LoginStore, SessionExpired

bp = Blueprint("auth", __name__)

_LOGIN = "login"
_END_SESSION = "end_session"


def _store() -> LoginStore:
    return current_app.extensions["logins"]


def login_token() -> str | None:
    """The login id the browser's session holds, whether or not it is still valid."""
    token = session.get(_LOGIN)
    return token if isinstance(token, str) else None


def current_login() -> Login | None:
    """Who is logged in, without refreshing (for page chrome). Cached per request."""
    if "login" not in g:
        token = login_token()
        g.login = _store().get(token) if token else None
    return g.login


def fresh_login() -> Login:
    """The current login with an access token good for the next queries.

    Raises SessionExpired when there is no login, or the issuer refused to
    refresh it, and IssuerUnreachable when it could not be asked.
    """
    token = login_token()
    if token is None:
        raise SessionExpired("not logged in")
    g.login = _store().fresh(token, oidc.refresh)
    return g.login


def login_required(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """Run `view` only for a logged-in user, with `g.login` fresh."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if login_token() is None:
            flash("Please sign in first.", "info")
            return redirect(url_for("todos.index"), code=303)
        fresh_login()
        return view(*args, **kwargs)

    return wrapped


def _authorize_redirect() -> Response:
    config: AppConfig = current_app.config["APP"]
    oidc.metadata()
    try:
        # The database token: without its audience the database refuses it.
        return oidc.issuer().authorize_redirect(
            config.redirect_uri, resource=config.database_audience
        )
    except RequestException as error:
        raise IssuerUnreachable(type(error).__name__) from None


@bp.get("/login")
def login() -> ResponseReturnValue:
    if current_login() is not None:
        return redirect(url_for("todos.index"))
    return _authorize_redirect()


@bp.get("/signup")
def signup() -> ResponseReturnValue:
    """The issuer's sign-up page, which continues to our authorization request."""
    if current_login() is not None:
        return redirect(url_for("todos.index"))
    config: AppConfig = current_app.config["APP"]
    authorize = urlsplit(_authorize_redirect().location)
    next_url = f"{authorize.path}?{authorize.query}"
    return redirect(f"{config.issuer_url}/signup?{urlencode({'next': next_url})}")


@bp.get("/auth/callback")
def callback() -> ResponseReturnValue:
    try:
        token = oidc.issuer().authorize_access_token()
    except RequestException as error:
        raise IssuerUnreachable(type(error).__name__) from None
    except (AuthlibBaseError, JoseError) as error:
        # JoseError: the ID token itself is invalid (signature, iss, aud, exp, nonce).
        # The page says it in our words: the callback's query string is anyone's to
        # write, so its error_description is logged (repr) but never shown.
        current_app.logger.warning(
            "sign-in failed: %r %r", error.error, getattr(error, "description", None)
        )
        return _sign_in_failed(error.error)
    userinfo = token.get("userinfo") or {}
    if not userinfo.get("sub"):
        return _sign_in_failed("no_id_token")
    new_login = _store().create(token, userinfo)
    session.clear()
    session.permanent = True
    session[_LOGIN] = new_login
    g.pop("login", None)
    return redirect(url_for("todos.index"), code=303)


#: What the sign-in page says for each error the issuer (or authlib) may report.
SIGN_IN_ERRORS = {
    "access_denied": "You declined to share your account with this app.",
    "login_required": "The login service needs you to sign in again.",
    "consent_required": "The login service needs your consent first.",
    "invalid_target": "The login service would not let this app use the database.",
    "temporarily_unavailable": "The login service is busy. Try again in a moment.",
    "server_error": "The login service had a problem. Try again in a moment.",
}
#: For every other error (state, code, ID token, and whatever a URL claims).
SIGN_IN_FAILED = (
    "The login service's answer was not valid. This happens when a sign-in link is "
    "used twice or is too old."
)


def _sign_in_failed(error: str | None) -> ResponseReturnValue:
    message = SIGN_IN_ERRORS.get(error or "", SIGN_IN_FAILED)
    page = render_template("login_failed.html", message=message, cancelled=error == "access_denied")
    return page, 400


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    token = login_token()
    login = _store().delete(token) if token else None
    session.clear()
    g.pop("login", None)
    if login is None:
        return redirect(url_for("todos.index"), code=303)
    if login.refresh_token:
        oidc.revoke(login.refresh_token)
    # POST-redirect-GET: the ID token waits in the (signed, HttpOnly) session for
    # the one page that posts it to the issuer, so that going back never re-posts.
    session[_END_SESSION] = login.id_token or ""
    return redirect(url_for("auth.signing_out"), code=303)


@bp.get("/logout/issuer")
def signing_out() -> ResponseReturnValue:
    """Ends the issuer's session too: a form the browser posts at once (signing_out.js),
    or on a click. The ID token rides in its body, never in a URL."""
    id_token = session.pop(_END_SESSION, None)
    if id_token is None:  # visited again (Back): the logout is done
        return redirect(url_for("todos.index"), code=303)
    end_session = oidc.end_session_form(id_token or None)
    if end_session is None:
        flash(
            "You are signed out here; the login service could not be reached to end its session.",
            "warning",
        )
        return redirect(url_for("todos.index"), code=303)
    endpoint, fields = end_session
    return render_template("signing_out.html", endpoint=endpoint, fields=fields)


def forget_login() -> None:
    """Drop a login the issuer or the database no longer accepts."""
    token = login_token()
    if token:
        _store().delete(token)
    session.pop(_LOGIN, None)
    g.pop("login", None)
