"""The second step of a login: after the password, a code from the authenticator app
(or a recovery code) when the account has one.

Between the two steps the signed session holds only who passed the password and
when (`PENDING`); nothing counts as logged in, and the step expires after five
minutes. Guessing is limited per account, whatever the browser.
"""

from __future__ import annotations

import time

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    session,
    url_for,
)

from issuer import headers
from issuer.accounts import totp, users
from issuer.accounts.forms import CodeForm
from issuer.accounts.pages import protect, too_many_attempts
from issuer.accounts.redirects import safe_next
from issuer.accounts.sessions import login_user
from issuer.accounts.throttle import RateLimit
from issuer.audit import audit
from issuer.db import get_engine

bp = protect(Blueprint("second_factor", __name__))

PENDING = "pending_login"
#: How long the code step waits after the password, in seconds.
PENDING_TTL = 300
#: Codes tried per account (right or wrong) in CODE_WINDOW seconds.
CODE_ATTEMPTS = 5
CODE_WINDOW = 900
#: What a wrong code is told, whichever kind of code it was.
CODE_FAILED = "That code is not right, or was used already."


def init_app(app: Flask) -> None:
    app.extensions["code_limit"] = RateLimit(
        app.extensions["db"], "second-factor", CODE_ATTEMPTS, CODE_WINDOW
    )
    app.register_blueprint(bp)


def code_limit() -> RateLimit:
    return current_app.extensions["code_limit"]


def start(user: users.User, next_url: str) -> Response:
    """The password was right and the account has a second factor: ask for it."""
    session[PENDING] = {"user": user.id, "at": time.time(), "next": next_url}
    return redirect(url_for("second_factor.code"), code=303)


def check(user_id: str, code: str) -> str | None:
    """The kind of code `code` is for `user_id` ("totp" or "recovery"), burnt as it is
    accepted; None when it is neither."""
    engine = get_engine()
    if totp.looks_like_recovery_code(code):
        return "recovery" if totp.use_recovery_code(engine, user_id, code) else None
    return "totp" if totp.check_code(engine, user_id, code) else None


def _pending() -> dict | None:
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_TTL:
        return None
    return pending


@bp.route("/login/code", methods=["GET", "POST"])
def code() -> Response | tuple[str, int] | str:
    pending = _pending()
    if pending is None:
        session.pop(PENDING, None)
        return redirect(url_for("accounts.login"))
    next_url = safe_next(pending.get("next"), url_for("accounts.account"))
    headers.continue_to(next_url)
    form = CodeForm()
    if not form.is_submitted():
        return render_template("accounts/login_code.html", form=form)
    if not form.validate():
        return render_template("accounts/login_code.html", form=form), 400
    user_id = pending["user"]
    retry_after = code_limit().spend(user_id)
    if retry_after is not None:
        audit("login.code_throttled", user_id=user_id, retry_after=retry_after)
        return too_many_attempts(retry_after)
    kind = check(user_id, form.code.data)
    user = users.get_user(get_engine(), user_id)
    if kind is None or user is None or user.disabled:
        audit("login.code_failed", user_id=user_id)
        return render_template("accounts/login_code.html", form=form, error=CODE_FAILED), 401
    session.pop(PENDING, None)
    login_user(user, amr=("pwd", "otp", "mfa"))
    audit("login", user_id=user.id, second_factor=kind)
    if kind == "recovery":
        audit("mfa.recovery_code_used", user_id=user.id)
    return redirect(next_url, code=303)
