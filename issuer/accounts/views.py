"""Login, sign-up, log-out and account pages (server-rendered, no JavaScript)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from issuer import headers
from issuer.accounts import (
    devices,
    notices,
    passkey_views,
    recovery,
    second_factor,
    security,
    totp,
    users,
)
from issuer.accounts.emails import normalize_email
from issuer.accounts.forms import LoginForm, LogoutForm, SignupForm
from issuer.accounts.pages import csrf, csrf_failed, protect, too_many_attempts
from issuer.accounts.passwords import PasswordPolicyError, check_policy, hash_password
from issuer.accounts.redirects import safe_next
from issuer.accounts.sessions import current_user, login_user, logout_user, remember_sign_up
from issuer.accounts.throttle import RateLimit, Throttle, ThrottlePolicy, address_key
from issuer.audit import audit
from issuer.db import get_engine

bp = protect(Blueprint("accounts", __name__))

# Said for every failed login, whatever the cause, so that the page does not
# tell an attacker which email addresses have accounts.
LOGIN_FAILED = "Incorrect email or password."
#: The window of ISSUER_SIGNUP_MAX_PER_ADDRESS.
SIGNUP_WINDOW = 3600


def init_views(app: Flask) -> None:
    config = app.config["ISSUER"]
    # CSRF is enforced per blueprint (ours, and the consent form's), not
    # app-wide: /token and /revoke are called by OAuth clients, not browsers.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    csrf.init_app(app)
    app.extensions["throttle"] = Throttle(
        app.extensions["db"],
        ThrottlePolicy(
            per_account=config.login_max_failures,
            per_address=config.login_max_failures_per_address,
            window=config.login_failure_window,
        ),
    )
    app.extensions["signup_limit"] = RateLimit(
        app.extensions["db"], "signup", config.signup_max_per_address, SIGNUP_WINDOW
    )
    app.register_blueprint(bp)
    notices.init_app(app)
    for pages in (recovery, second_factor, security, passkey_views):
        pages.init_app(app)
    app.register_error_handler(CSRFError, csrf_failed)
    app.context_processor(lambda: {"current_user": current_user})


def _throttle() -> Throttle:
    return current_app.extensions["throttle"]


def _next_url() -> str:
    """Where the page's form leads after it succeeds (a local path), allowed by its CSP."""
    next_url = safe_next(request.args.get("next"), url_for("accounts.account"))
    headers.continue_to(next_url)
    return next_url


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    form = LoginForm()
    next_url = _next_url()
    headers.allow_scripts()  # "Sign in with a passkey"
    page = {
        "form": form,
        "next_url": next_url,
        "signup_enabled": _signup_enabled(),
        "changed": request.args.get("changed"),
    }
    if request.method == "GET":
        return render_template("accounts/login.html", **page)
    if not form.validate():
        return render_template("accounts/login.html", **page), 400
    email = normalize_email(form.email.data)
    address = address_key(request.remote_addr)
    device = devices.known_device(request, email)
    attempt = _throttle().admit(address, account=email, device=device)
    known = device is not None
    if isinstance(attempt, int):
        audit("login.throttled", address=address, known_device=known, retry_after=attempt)
        return too_many_attempts(attempt)
    result = users.authenticate(get_engine(), email, form.password.data)
    if result.user is None:
        audit(
            "login.failed",
            reason=result.reason,
            user_id=result.user_id,
            address=address,
            known_device=known,
        )
        return render_template("accounts/login.html", error=LOGIN_FAILED, **page), 401
    _throttle().succeeded(attempt)
    if totp.enrolled(get_engine(), result.user.id):
        audit("login.password_passed", user_id=result.user.id, address=address)
        response = second_factor.start(result.user, next_url)
    else:
        login_user(result.user)
        audit("login", user_id=result.user.id, address=address, known_device=known)
        response = redirect(next_url, code=303)
    devices.remember(request, response, email)
    return response


def _signup_enabled() -> bool:
    return current_app.config["ISSUER"].signup_enabled


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Response | tuple[str, int] | str:
    if not _signup_enabled():
        return render_template(
            "error.html",
            title="Sign-up is closed",
            message="New accounts are created by the administrator of this site.",
        ), 403
    form = SignupForm()
    next_url = _next_url()
    page = {"form": form, "next_url": next_url}
    if request.method == "GET":
        return render_template("accounts/signup.html", **page)
    if not form.validate():
        return render_template("accounts/signup.html", **page), 400
    address = address_key(request.remote_addr)
    retry_after = current_app.extensions["signup_limit"].spend(address)
    if retry_after is not None:
        audit("signup.throttled", address=address, retry_after=retry_after)
        return too_many_attempts(retry_after)
    try:
        check_policy(form.password.data)
    except PasswordPolicyError as exc:
        form.password.errors = [str(exc)]
        return render_template("accounts/signup.html", **page), 400
    email = normalize_email(form.email.data)
    continuation = safe_next(request.args.get("next"), "") or None
    existing = users.find_user(get_engine(), email)
    if existing is None:
        try:
            user = users.create_user(get_engine(), email, form.password.data)
        except users.DuplicateEmailError:  # signed up a moment ago, by someone else
            existing = users.find_user(get_engine(), email)
        else:
            audit("signup", user_id=user.id, address=address)
            remember_sign_up(user.id)
            notices.later(user, lambda: notices.verify_email(user, continuation))
    if existing is not None:
        # The same answer as for a new address, in the same time (one password hash),
        # and a mail to the owner instead: whether the address has an account stays unsaid.
        hash_password(form.password.data)
        remember_sign_up(None)
        audit("signup.existing_address", user_id=existing.id, address=address)
        owner = existing
        notices.later(owner, lambda: notices.signup_with_taken_address(owner, continuation))
    return render_template("accounts/check_email.html", email=email, reason="signup")


@bp.post("/logout", provide_automatic_options=False)
def logout() -> Response:
    """POST with a CSRF token only: every other method is a 405, so no link, image
    or prefetch (GET, HEAD) and no page elsewhere can log a user out."""
    user = current_user()
    logout_user()
    if user is not None:
        audit("logout", user_id=user.id)
    return redirect(safe_next(request.args.get("next"), url_for("accounts.login")), code=303)


@bp.get("/account")
def account() -> Response | str:
    user = current_user()
    if user is None:
        return redirect(url_for("accounts.login", next=request.path))
    return render_template("accounts/account.html", user=user, form=LogoutForm())


@bp.get("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    """Liveness plus a database round trip: a worker that cannot reach its
    database cannot log anyone in."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return "database unavailable\n", 503, {"Content-Type": "text/plain"}
    return "ok\n", 200, {"Content-Type": "text/plain"}
