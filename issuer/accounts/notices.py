"""The account mails: what each says and where its link points.

Links are built from ISSUER_URL, never from the request's Host header: a forged
Host must not turn our mail into a link to someone else's site.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from urllib.parse import urlencode

from flask import Flask, current_app

from issuer.accounts import links
from issuer.accounts.models import User
from issuer.accounts.throttle import RateLimit
from issuer.audit import audit
from issuer.db import get_engine
from issuer.mail import Mailer, MailError

log = logging.getLogger(__name__)

#: The window of the per-address and per-account mail limits.
MAIL_WINDOW = 3600


def init_app(app: Flask) -> None:
    config = app.config["ISSUER"]
    engine = app.extensions["db"]
    app.extensions["mail_limits"] = (
        RateLimit(engine, "mail-address", config.mail_max_per_address, MAIL_WINDOW),
        RateLimit(engine, "mail-account", config.mail_max_per_account, MAIL_WINDOW),
    )


def address_limit() -> RateLimit:
    """Requests that mail someone (reset, resend), per client address."""
    return current_app.extensions["mail_limits"][0]


def later(user: User, send: Callable[[], None]) -> None:
    """Send an account mail after the response (its time does not show in the answer),
    unless the account had its fill this hour. Failures are logged and audited."""
    if current_app.extensions["mail_limits"][1].spend(user.id) is not None:
        audit("mail.skipped", user_id=user.id, reason="account_limit")
        return
    _after_response(user, send)


def security_notice(user: User, send: Callable[[], None]) -> None:
    """Like `later`, but never dropped by the account's limit: anyone can fill that
    with reset requests, and the owner must hear that their password, address or
    ways to sign in changed. Only changes that needed the password send these."""
    _after_response(user, send)


def _after_response(user: User, send: Callable[[], None]) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        with app.app_context():
            try:
                send()
            except MailError as error:
                log.error("%s", error)
                audit("mail.failed", user_id=user.id)

    threading.Thread(target=run, name="account-mail", daemon=True).start()


def _send(user: User, template: str, **context: object) -> None:
    mailer: Mailer = current_app.extensions["mailer"]
    mailer.send_template(user.email, template, email=user.email, **context)


def _link(path: str, purpose: str, user: User, next_url: str | None, **data: str) -> str:
    if next_url:
        data["next"] = next_url
    token = links.issue(get_engine(), user.id, purpose, data or None)
    return f"{current_app.config['ISSUER'].issuer_url}{path}?{urlencode({'token': token})}"


def _minutes(purpose: str) -> int:
    return links.LIFETIMES[purpose] // 60


def verify_email(user: User, next_url: str | None = None) -> None:
    """A link that proves `user` reads mail at their address (then on to `next_url`)."""
    link = _link("/verify-email", links.VERIFY_EMAIL, user, next_url)
    _send(user, "verify_email", link=link, hours=_minutes(links.VERIFY_EMAIL) // 60)


def signup_with_taken_address(user: User, next_url: str | None = None) -> None:
    """Someone tried to sign up with `user`'s address: tell its owner, with a way back
    in should that someone have been them."""
    link = _link("/reset-password", links.RESET_PASSWORD, user, next_url)
    _send(user, "signup_taken", link=link, minutes=_minutes(links.RESET_PASSWORD))


def reset_password(user: User, next_url: str | None = None) -> None:
    link = _link("/reset-password", links.RESET_PASSWORD, user, next_url)
    _send(user, "reset_password", link=link, minutes=_minutes(links.RESET_PASSWORD))


def password_changed(user: User) -> None:
    """After the fact, so that an owner who did not do it knows at once."""
    reset = f"{current_app.config['ISSUER'].issuer_url}/forgot-password"
    _send(user, "password_changed", reset=reset)


def sign_in_method_added(user: User, method: str) -> None:
    """A new way into the account (a passkey, an authenticator app): if it was not
    the owner, someone else can now sign in, or lock them out."""
    security = f"{current_app.config['ISSUER'].issuer_url}/account/security"
    _send(user, "sign_in_method_added", method=method, security=security)


def confirm_new_email(user: User, new_email: str) -> None:
    """A link to the new address: only its reader can move the account there."""
    link = _link("/account/email/confirm", links.CHANGE_EMAIL, user, None, email=new_email)
    mailer: Mailer = current_app.extensions["mailer"]
    mailer.send_template(
        new_email,
        "confirm_new_email",
        email=new_email,
        old_email=user.email,
        link=link,
        hours=_minutes(links.CHANGE_EMAIL) // 60,
    )


def email_changed(old_email: str, new_email: str) -> None:
    """To the address the account left, so that its owner knows if it was not them."""
    mailer: Mailer = current_app.extensions["mailer"]
    reset = f"{current_app.config['ISSUER'].issuer_url}/forgot-password"
    mailer.send_template(
        old_email, "email_changed", email=old_email, new_email=new_email, reset=reset
    )


def account_deleted(email: str) -> None:
    mailer: Mailer = current_app.extensions["mailer"]
    mailer.send_template(email, "account_deleted", email=email)
