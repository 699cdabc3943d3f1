"""The account's security page: password, email, authenticator app, sessions, apps,
and deleting the account.

Every change that could lock the owner out or let someone else in asks for the
password again (limited per account, as logins are), and the owner hears about it
by mail. Passkeys have their own module (`passkey_views`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from issuer import headers
from issuer.accounts import events, links, notices, passkeys, sealing, sessions, totp, users
from issuer.accounts.emails import normalize_email
from issuer.accounts.forms import (
    ChangeEmailForm,
    ChangePasswordForm,
    DeleteAccountForm,
    DisableTotpForm,
    EndSessionForm,
    EnrolTotpForm,
    PageForm,
    RevokeAppForm,
)
from issuer.accounts.models import User
from issuer.accounts.pages import protect, too_many_attempts
from issuer.accounts.passwords import verify_password
from issuer.accounts.recovery import LINK_FAILED, LinkForm
from issuer.accounts.second_factor import CODE_FAILED, check, code_limit
from issuer.accounts.throttle import RateLimit
from issuer.audit import audit
from issuer.db import get_engine

bp = protect(Blueprint("security", __name__, url_prefix="/account"))

#: Password confirmations per account in REAUTH_WINDOW seconds.
REAUTH_ATTEMPTS = 5
REAUTH_WINDOW = 900
WRONG_PASSWORD = "That is not your current password."  # noqa: S105 (a message)
#: The setup key while the person types its first code (signed session, theirs only).
TOTP_SETUP = "totp_setup"


def init_app(app: Flask) -> None:
    app.extensions["reauth_limit"] = RateLimit(
        app.extensions["db"], "reauth", REAUTH_ATTEMPTS, REAUTH_WINDOW
    )
    app.register_blueprint(bp)
    app.add_template_filter(_when, "when")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


@bp.before_request
def _logged_in() -> Response | None:
    # The email-change link works in any browser: it proves the new mailbox, and the
    # change was asked for with the password.
    public = ("security.confirm_email_page", "security.confirm_email")
    if sessions.current_user() is None and request.endpoint not in public:
        return redirect(url_for("accounts.login", next=request.path))
    return None


def _user() -> User:
    user = sessions.current_user()
    assert user is not None  # `_logged_in` runs first
    return user


def password_refused(user: User, password: str) -> Response | str | None:
    """None when `password` is the user's; else what to answer (an error, or 429)."""
    retry_after = current_app.extensions["reauth_limit"].spend(user.id)
    if retry_after is not None:
        audit("reauth.throttled", user_id=user.id, retry_after=retry_after)
        return too_many_attempts(retry_after)
    if verify_password(users.password_hash(get_engine(), user.id) or "", password):
        return None
    audit("reauth.failed", user_id=user.id)
    return WRONG_PASSWORD


def render_page(status: int = 200, **errors: str) -> tuple[str, int]:
    user = _user()
    engine = get_engine()
    headers.allow_scripts()
    return render_template(
        "accounts/security.html",
        user=user,
        totp_on=totp.enrolled(engine, user.id),
        recovery_left=totp.remaining_recovery_codes(engine, user.id),
        passkeys=passkeys.list_passkeys(engine, user.id),
        sessions=sessions.list_sessions(user.id),
        this_session=sessions.current_session_id(),
        apps=current_app.extensions["app_access"].apps(user.id),
        done=request.args.get("done"),
        errors=errors,
        password_form=ChangePasswordForm(formdata=None),
        email_form=ChangeEmailForm(formdata=None),
        delete_form=DeleteAccountForm(formdata=None),
        disable_form=DisableTotpForm(formdata=None),
    ), status


def _done(what: str) -> Response:
    return redirect(url_for("security.page", done=what), code=303)


@bp.get("/security")
def page() -> tuple[str, int]:
    return render_page()


# -- password and email ---------------------------------------------------------------


@bp.post("/password")
def change_password() -> Response | tuple[str, int] | str:
    user = _user()
    form = ChangePasswordForm()
    if not form.validate():
        return render_page(400, password=_first_error(form))
    refused = password_refused(user, form.current.data)
    if refused is not None:
        return refused if isinstance(refused, Response) else render_page(400, password=refused)
    amr, auth_time = sessions.authentication_methods(), sessions.authenticated_at()
    with get_engine().begin() as conn:
        changed = users.set_password(conn, user.id, form.password.data)
    if changed is None:
        return redirect(url_for("accounts.login"))
    # Every session and app ended with the old password; this browser goes on, as
    # the same login (same `amr` and `auth_time`: typing the password here is no
    # fresh login, and skipped no second factor).
    sessions.login_user(changed, amr=amr, auth_time=auth_time)
    audit("password.changed", user_id=user.id)
    notices.security_notice(changed, lambda: notices.password_changed(changed))
    return _done("password")


@bp.post("/email")
def change_email() -> Response | tuple[str, int] | str:
    user = _user()
    form = ChangeEmailForm()
    if not form.validate():
        return render_page(400, email=_first_error(form))
    refused = password_refused(user, form.password.data)
    if refused is not None:
        return refused if isinstance(refused, Response) else render_page(400, email=refused)
    new_email = normalize_email(form.email.data)
    if new_email == user.email:
        return render_page(400, email="That is already your address.")
    audit("email.change_requested", user_id=user.id)
    # Taken or not, the new address gets the link: whether it has an account shows
    # only to whoever reads its mail, when they open the link.
    notices.later(user, lambda: notices.confirm_new_email(user, new_email))
    return render_template("accounts/check_email.html", email=new_email, reason="change")


@bp.get("/email/confirm")
def confirm_email_page() -> str | tuple[str, int]:
    token = request.args.get("token", "")[:128]
    try:
        link = links.check(get_engine(), token, links.CHANGE_EMAIL)
    except links.LinkError as error:
        return _link_failed(error.reason)
    return render_template(
        "accounts/confirm_email_change.html", form=LinkForm(token=token), email=link.data["email"]
    )


@bp.post("/email/confirm")
def confirm_email() -> Response | tuple[str, int]:
    form = LinkForm()
    if not form.validate():
        return _link_failed("malformed")
    try:
        with get_engine().begin() as conn:
            link = links.redeem(conn, form.token.data, links.CHANGE_EMAIL)
            old = users.change_email(conn, link.user_id, link.data["email"])
    except links.LinkError as error:
        return _link_failed(error.reason)
    except users.DuplicateEmailError:
        audit("email.change_refused", reason="taken")
        return render_template(
            "accounts/link_failed.html",
            purpose=links.CHANGE_EMAIL,
            message="That address already has an account of its own, so this one cannot move there.",
        ), 409
    audit("email.changed", user_id=link.user_id)
    if old is not None:
        old_email, new_email = old.email, link.data["email"]
        notices.security_notice(old, lambda: notices.email_changed(old_email, new_email))
    return _done("email")


def _link_failed(reason: str) -> tuple[str, int]:
    audit("link.refused", purpose=links.CHANGE_EMAIL, reason=reason)
    return render_template(
        "accounts/link_failed.html", purpose=links.CHANGE_EMAIL, message=LINK_FAILED
    ), 400


# -- authenticator app ---------------------------------------------------------------


@bp.route("/two-factor", methods=["GET", "POST"])
def enrol_totp() -> Response | tuple[str, int] | str:
    user = _user()
    if totp.enrolled(get_engine(), user.id):
        return _done("totp")
    form = EnrolTotpForm()
    secret = _setup_key(user)
    if request.method == "GET" or secret is None:
        secret = totp.new_secret()
        # Sealed: the signed cookie is readable, and this key is a second factor.
        session[TOTP_SETUP] = sealing.seal(secret, user.id)
        return _enrol_page(user, secret, form)
    if not form.validate():
        return _enrol_page(user, secret, form, status=400)
    refused = password_refused(user, form.password.data)
    if isinstance(refused, Response):
        return refused
    if refused is not None:
        return _enrol_page(user, secret, form, error=refused, status=400)
    step = totp.matching_step(secret, form.code.data)
    if step is None:
        return _enrol_page(user, secret, form, error=CODE_FAILED, status=400)
    codes = totp.enrol(get_engine(), user.id, secret, used_step=step)
    session.pop(TOTP_SETUP, None)
    audit("mfa.enabled", user_id=user.id, method="totp")
    notices.security_notice(
        user, lambda: notices.sign_in_method_added(user, "an authenticator app")
    )
    return render_template("accounts/recovery_codes.html", codes=codes)


def _setup_key(user: User) -> str | None:
    sealed = session.get(TOTP_SETUP)
    if not isinstance(sealed, str):
        return None
    try:
        return sealing.unseal(sealed, user.id)
    except (sealing.SealError, ValueError):
        return None


def _enrol_page(
    user: User, secret: str, form: EnrolTotpForm, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    issuer_name = urlsplit(current_app.config["ISSUER"].issuer_url).netloc
    uri = totp.provisioning_uri(secret, user.email, issuer_name)
    return render_template(
        "accounts/enrol_totp.html",
        form=form,
        qr=totp.qr_svg(uri),
        setup_key=totp.setup_key(secret),
        error=error,
    ), status


@bp.post("/two-factor/disable")
def disable_totp() -> Response | tuple[str, int] | str:
    user = _user()
    form = DisableTotpForm()
    if not form.validate():
        return render_page(400, totp=_first_error(form))
    refused = password_refused(user, form.password.data)
    if refused is not None:
        return refused if isinstance(refused, Response) else render_page(400, totp=refused)
    retry_after = code_limit().spend(user.id)
    if retry_after is not None:
        return too_many_attempts(retry_after)
    if check(user.id, form.code.data) is None:
        return render_page(400, totp=CODE_FAILED)
    with get_engine().begin() as conn:
        totp.remove(conn, user.id)
    audit("mfa.disabled", user_id=user.id, method="totp", via="account")
    return _done("totp-off")


# -- sessions and apps ------------------------------------------------------------


@bp.post("/sessions/end")
def end_session() -> Response | tuple[str, int]:
    user = _user()
    form = EndSessionForm()
    if not form.validate():
        return render_page(400, sessions="Choose a session.")
    this = sessions.current_session_id()
    if form.session.data == "others":
        ended = sessions.end_sessions(user.id, keep=this)
    else:
        ended = sessions.end_sessions(user.id, only=form.session.data)
    audit("sessions.ended", user_id=user.id, count=ended)
    if form.session.data == this:
        session.clear()
        return redirect(url_for("accounts.login"), code=303)
    return _done("sessions")


@bp.post("/apps/revoke")
def revoke_app() -> Response | tuple[str, int]:
    user = _user()
    form = RevokeAppForm()
    if not form.validate():
        return render_page(400, apps="Choose an app.")
    revoked = current_app.extensions["app_access"].revoke(user.id, form.client.data)
    if not revoked:
        return render_page(404, apps="That app has no access to remove.")
    audit("oauth.access_removed", user_id=user.id, client_id=form.client.data, tokens=revoked)
    return _done("apps")


# -- deleting the account ------------------------------------------------------------


@bp.post("/delete")
def delete_account() -> Response | tuple[str, int] | str:
    user = _user()
    form = DeleteAccountForm()
    if not form.validate():
        return render_page(400, delete=_first_error(form))
    refused = password_refused(user, form.password.data)
    if refused is not None:
        return refused if isinstance(refused, Response) else render_page(400, delete=refused)
    with get_engine().begin() as conn:
        events.credentials_changed.send(conn, user_id=user.id)
        users.remove_user(conn, user.id)
    session.clear()
    audit("account.deleted", user_id=user.id, via="account")
    email = user.email
    notices.security_notice(user, lambda: notices.account_deleted(email))
    return render_template("accounts/deleted.html", email=email)


def _first_error(form: PageForm) -> str:
    for errors in form.errors.values():
        if errors:
            return str(errors[0])
    return "Please check the form."
