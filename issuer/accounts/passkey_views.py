"""Passkey pages: adding, naming and removing passkeys on the account page, and
"Sign in with a passkey" on the login page (`static/passkeys.js` runs the browser's
side of both ceremonies; every call is a same-origin POST carrying the CSRF token).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)

from issuer.accounts import notices, passkeys, users
from issuer.accounts.forms import PasskeyForm
from issuer.accounts.pages import protect, too_many_attempts
from issuer.accounts.redirects import safe_next
from issuer.accounts.security import password_refused, render_page
from issuer.accounts.sessions import current_user, login_user
from issuer.accounts.throttle import RateLimit, address_key
from issuer.audit import audit
from issuer.db import get_engine

bp = protect(Blueprint("passkeys", __name__))

REGISTRATION = "passkey_registration"
SIGN_IN = "passkey_sign_in"
#: Passkey sign-in attempts per client address in SIGN_IN_WINDOW seconds.
SIGN_IN_ATTEMPTS = 30
SIGN_IN_WINDOW = 900
#: Said for every refused passkey sign-in.
SIGN_IN_FAILED = "That passkey did not sign you in. Try again, or use your password."


def init_app(app: Flask) -> None:
    app.extensions["passkey_limit"] = RateLimit(
        app.extensions["db"], "passkey", SIGN_IN_ATTEMPTS, SIGN_IN_WINDOW
    )
    app.register_blueprint(bp)


def _rp() -> passkeys.RelyingParty:
    return passkeys.RelyingParty.for_issuer(current_app.config["ISSUER"].issuer_url)


def _remember(key: str, challenge: bytes) -> None:
    passkeys.keep_challenge(get_engine(), challenge)
    session[key] = {"challenge": base64.urlsafe_b64encode(challenge).decode(), "at": time.time()}


def _take(key: str) -> bytes | None:
    """The ceremony's challenge, once: a second answer to it finds none, even with
    the cookie the first one was sent with."""
    kept = session.pop(key, None)
    if not isinstance(kept, dict) or time.time() - kept.get("at", 0) > passkeys.CEREMONY_TTL:
        return None
    challenge = base64.urlsafe_b64decode(kept["challenge"])
    return challenge if passkeys.spend_challenge(get_engine(), challenge) else None


def _json_body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _refused(message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify(error=message), status


# -- on the account page ---------------------------------------------------------------


@bp.post("/account/passkeys/options")
def registration_options() -> Response | tuple[Response, int]:
    user = current_user()
    if user is None:
        return _refused("Log in first.", 401)
    # A new way into the account: whoever holds only the session cannot add one.
    body = _json_body() or {}
    password = body.get("password")
    refused = password_refused(user, password if isinstance(password, str) else "")
    if isinstance(refused, Response):
        return refused
    if refused is not None:
        return _refused(refused, 403)
    options, challenge = passkeys.registration_options(get_engine(), _rp(), user)
    _remember(REGISTRATION, challenge)
    return Response(options, mimetype="application/json")


@bp.post("/account/passkeys")
def add() -> Response | tuple[Response, int]:
    user = current_user()
    if user is None:
        return _refused("Log in first.", 401)
    body = _json_body()
    challenge = _take(REGISTRATION)
    if body is None or challenge is None:
        return _refused("Start again: the request was malformed or too old.")
    name = body.get("name") if isinstance(body.get("name"), str) else ""
    try:
        key = passkeys.register(get_engine(), _rp(), user, body.get("credential"), challenge, name)
    except passkeys.PasskeyError as error:
        audit("passkey.refused", user_id=user.id, ceremony="registration", reason=str(error))
        return _refused("The authenticator's answer could not be verified.")
    audit("passkey.added", user_id=user.id, passkey=key.id)
    notices.security_notice(
        user, lambda: notices.sign_in_method_added(user, f"a passkey named “{key.name}”")
    )
    return jsonify(added=key.name, next=url_for("security.page", done="passkey"))


@bp.post("/account/passkeys/rename")
def rename() -> Response | tuple[str, int]:
    return _change(
        lambda user, form: passkeys.rename(
            get_engine(), user.id, form.passkey.data, form.name.data or ""
        ),
        "passkey.renamed",
    )


@bp.post("/account/passkeys/remove")
def remove() -> Response | tuple[str, int]:
    return _change(
        lambda user, form: passkeys.remove(get_engine(), user.id, form.passkey.data),
        "passkey.removed",
    )


def _change(apply, event: str) -> Response | tuple[str, int]:
    user = current_user()
    if user is None:
        return redirect(url_for("accounts.login", next=url_for("security.page")))
    form = PasskeyForm()
    if not form.validate() or not apply(user, form):
        return render_page(400, passkeys="No such passkey, or an invalid name.")
    audit(event, user_id=user.id, passkey=form.passkey.data)
    return redirect(url_for("security.page", done=event.split(".")[1]), code=303)


# -- on the login page -------------------------------------------------------------------


@bp.post("/login/passkey/options")
def sign_in_options() -> Response:
    options, challenge = passkeys.authentication_options(_rp())
    _remember(SIGN_IN, challenge)
    return Response(options, mimetype="application/json")


@bp.post("/login/passkey")
def sign_in() -> Response | tuple[Response, int]:
    address = address_key(request.remote_addr)
    retry_after = current_app.extensions["passkey_limit"].spend(address)
    if retry_after is not None:
        audit("login.passkey_throttled", address=address, retry_after=retry_after)
        return too_many_attempts(retry_after)
    body = _json_body()
    challenge = _take(SIGN_IN)
    if body is None or challenge is None:
        return _refused("Start again: the request was malformed or too old.")
    try:
        result = passkeys.authenticate(get_engine(), _rp(), body.get("credential"), challenge)
    except passkeys.PasskeyError as error:
        audit("login.failed", reason=f"passkey: {error}", address=address)
        return _refused(SIGN_IN_FAILED, 401)
    user = users.get_user(get_engine(), result.user_id)
    if user is None or user.disabled:
        audit("login.failed", reason="disabled", user_id=result.user_id, address=address)
        return _refused(SIGN_IN_FAILED, 401)
    login_user(user, amr=result.amr)
    audit("login", user_id=user.id, address=address, passkey=result.passkey)
    next_url = safe_next(request.args.get("next"), url_for("accounts.account"))
    return jsonify(next=next_url)
