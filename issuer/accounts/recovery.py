"""Proving an address and getting back in: email verification and password reset.

Links come by mail (`notices`), work once and expire (`links`). Opening one shows a
page with a button; only the button's POST uses the link up, because mail scanners
and link previews open every link they see. Asking for a reset answers the same for
every address, and the mail goes out in the background so that the answer takes
the same time too.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    redirect,
    render_template,
    request,
    url_for,
)
from wtforms import HiddenField
from wtforms.validators import InputRequired, Length

from issuer import headers
from issuer.accounts import links, notices, passkeys, totp, users
from issuer.accounts.emails import normalize_email
from issuer.accounts.forms import (
    PageForm,
    email_field,
    new_password_field,
    repeat_password_field,
)
from issuer.accounts.pages import protect, too_many_attempts
from issuer.accounts.redirects import safe_next
from issuer.accounts.sessions import current_user, login_user, signed_up_here
from issuer.accounts.throttle import address_key
from issuer.audit import audit
from issuer.db import get_engine

bp = protect(Blueprint("recovery", __name__))

#: Said for an unusable link, whatever the reason (unknown, tampered, expired, used).
LINK_FAILED = "This link has expired or was already used."


class LinkForm(PageForm):
    token = HiddenField(validators=[InputRequired(), Length(max=128)])


class ForgotForm(PageForm):
    email = email_field()


class ResetForm(LinkForm):
    password = new_password_field("New password")
    confirm = repeat_password_field("Repeat the new password")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _next() -> str | None:
    """A local continuation (an authorization request) or None."""
    target = safe_next(request.args.get("next"), "")
    return target or None


def _link_failed(reason: str, purpose: str) -> tuple[str, int]:
    audit("link.refused", purpose=purpose, reason=reason, address=address_key(request.remote_addr))
    return render_template("accounts/link_failed.html", purpose=purpose, message=LINK_FAILED), 400


# -- email verification ------------------------------------------------------------


@bp.get("/verify-email")
def verify_email_page() -> str | tuple[str, int]:
    token = request.args.get("token", "")[:128]
    try:
        link = links.check(get_engine(), token, links.VERIFY_EMAIL)
    except links.LinkError as error:
        return _link_failed(error.reason, links.VERIFY_EMAIL)
    user = users.get_user(get_engine(), link.user_id)
    headers.continue_to(safe_next(link.data.get("next"), url_for("accounts.account")))
    form = LinkForm(token=token)
    return render_template(
        "accounts/verify_email.html", form=form, email=user.email if user else ""
    )


@bp.post("/verify-email")
def verify_email() -> Response | tuple[str, int]:
    form = LinkForm()
    if not form.validate():
        return _link_failed("malformed", links.VERIFY_EMAIL)
    try:
        with get_engine().begin() as conn:
            link = links.redeem(conn, form.token.data, links.VERIFY_EMAIL)
            user = users.mark_verified(conn, link.user_id)
    except links.LinkError as error:
        return _link_failed(error.reason, links.VERIFY_EMAIL)
    if user is None or user.disabled:
        return _link_failed("disabled", links.VERIFY_EMAIL)
    audit("email.verified", user_id=user.id, via="link")
    next_url = safe_next(link.data.get("next"), url_for("accounts.account"))
    signed_in = current_user()
    if signed_in is not None and signed_in.id == user.id:
        return redirect(next_url, code=303)
    if signed_up_here(user.id) and not _has_second_factor(user.id):
        # The password was typed here, at sign-up; the mark lives no longer than the
        # link. A second factor set up since (in another browser) is never skipped.
        login_user(user)
        return redirect(next_url, code=303)
    # Anywhere else the link proves the mailbox, not the person: whoever reads the
    # mail must not be signed in (nor a victim into an attacker's account).
    return redirect(
        url_for("accounts.login", next=link.data.get("next"), changed="email"), code=303
    )


def _has_second_factor(user_id: str) -> bool:
    engine = get_engine()
    return totp.enrolled(engine, user_id) or bool(passkeys.list_passkeys(engine, user_id))


@bp.get("/verify-email/needed")
def verification_needed() -> Response | str:
    """Where an app's sign-in waits for an unverified address (`oauth.views.authorize`)."""
    user = current_user()
    next_url = _next()
    if user is None:
        return redirect(url_for("accounts.login", next=request.full_path))
    if user.email_verified:
        return redirect(next_url or url_for("accounts.account"))
    return render_template(
        "accounts/verification_needed.html", user=user, next_url=next_url, form=PageForm()
    )


@bp.post("/verify-email/resend")
def resend_verification() -> Response | tuple[str, int] | str:
    user = current_user()
    if user is None:
        return redirect(url_for("accounts.login"))
    next_url = _next()
    if user.email_verified:
        return redirect(next_url or url_for("accounts.account"), code=303)
    retry_after = notices.address_limit().spend(address_key(request.remote_addr))
    if retry_after is not None:
        return too_many_attempts(retry_after)
    notices.later(user, lambda: notices.verify_email(user, next_url))
    audit("email.verification_sent", user_id=user.id)
    return render_template("accounts/check_email.html", email=user.email, reason="verify")


# -- password reset ----------------------------------------------------------------


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password() -> Response | tuple[str, int] | str:
    form = ForgotForm()
    next_url = _next()
    if request.method == "GET" or not form.validate():
        status = 200 if request.method == "GET" else 400
        return render_template(
            "accounts/forgot_password.html", form=form, next_url=next_url
        ), status
    address = address_key(request.remote_addr)
    retry_after = notices.address_limit().spend(address)
    if retry_after is not None:
        audit("password.reset_throttled", address=address, retry_after=retry_after)
        return too_many_attempts(retry_after)
    email = normalize_email(form.email.data)
    user = users.find_user(get_engine(), email)
    audit("password.reset_requested", user_id=user.id if user else None, address=address)
    if user is not None and not user.disabled:
        notices.later(user, lambda: notices.reset_password(user, next_url))
    # The same page for every address: whether it has an account stays unsaid.
    return render_template("accounts/check_email.html", email=email, reason="reset")


@bp.get("/reset-password")
def reset_password_page() -> str | tuple[str, int]:
    token = request.args.get("token", "")[:128]
    try:
        links.check(get_engine(), token, links.RESET_PASSWORD)
    except links.LinkError as error:
        return _link_failed(error.reason, links.RESET_PASSWORD)
    return render_template("accounts/reset_password.html", form=ResetForm(token=token))


@bp.post("/reset-password")
def reset_password() -> Response | tuple[str, int] | str:
    form = ResetForm()
    if not form.validate():
        if form.token.errors:
            return _link_failed("malformed", links.RESET_PASSWORD)
        return render_template("accounts/reset_password.html", form=form), 400
    try:
        with get_engine().begin() as conn:
            link = links.redeem(conn, form.token.data, links.RESET_PASSWORD)
            # The link came by mail: the address is proven too.
            users.mark_verified(conn, link.user_id)
            user = users.set_password(conn, link.user_id, form.password.data)
    except links.LinkError as error:
        return _link_failed(error.reason, links.RESET_PASSWORD)
    if user is None:
        return _link_failed("unknown_user", links.RESET_PASSWORD)
    audit("password.reset", user_id=user.id)
    notices.security_notice(user, lambda: notices.password_changed(user))
    # Not signed in here: a second factor, once set up, must still be asked for.
    return redirect(
        url_for("accounts.login", next=link.data.get("next"), changed="password"), code=303
    )
