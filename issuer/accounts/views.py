"""Login, sign-up, log-out and account pages (server-rendered, no JavaScript)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from issuer import headers
from issuer.accounts import devices, users
from issuer.accounts.emails import normalize_email
from issuer.accounts.forms import LoginForm, LogoutForm, SignupForm
from issuer.accounts.passwords import PasswordPolicyError
from issuer.accounts.redirects import safe_next
from issuer.accounts.sessions import current_user, login_user, logout_user
from issuer.accounts.throttle import Throttle, ThrottlePolicy, address_key
from issuer.audit import audit
from issuer.db import get_engine

bp = Blueprint("accounts", __name__)
csrf = CSRFProtect()

# Said for every failed login, whatever the cause, so that the page does not
# tell an attacker which email addresses have accounts.
LOGIN_FAILED = "Incorrect email or password."


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
    app.register_blueprint(bp)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.context_processor(lambda: {"current_user": current_user})


@bp.before_request
def _protect() -> None:
    csrf.protect()


# Pages with forms and personal data: never cached, never framed (clickjacking a
# login or log-out button), forms only to here and where a login continues.
bp.after_request(headers.page_headers)


def _csrf_failed(error: CSRFError) -> tuple[str, int]:
    return render_template(
        "error.html",
        title="This form has expired",
        message=(
            "The form was too old or did not come from this site, so nothing was done. "
            "Go back, reload the page and try again."
        ),
    ), 400


def _throttle() -> Throttle:
    return current_app.extensions["throttle"]


def _next_url() -> str:
    """Where the page's form leads after it succeeds (a local path), allowed by its CSP."""
    next_url = safe_next(request.args.get("next"), url_for("accounts.account"))
    headers.continue_to(next_url)
    return next_url


def _too_many_attempts(retry_after: int) -> Response:
    minutes = max(1, -(-retry_after // 60))
    response = make_response(
        render_template("accounts/throttled.html", minutes=minutes, retry_after=retry_after), 429
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    form = LoginForm()
    next_url = _next_url()
    page = {"form": form, "next_url": next_url, "signup_enabled": _signup_enabled()}
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
        return _too_many_attempts(attempt)
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
    # Probing for accounts through sign-up spends the address's login budget.
    attempt = _throttle().admit(address)
    if isinstance(attempt, int):
        audit("signup.throttled", address=address, retry_after=attempt)
        return _too_many_attempts(attempt)
    try:
        user = users.create_user(get_engine(), form.email.data, form.password.data)
    except users.DuplicateEmailError:
        audit("signup.duplicate", address=address)
        form.email.errors = ["An account with this email address already exists. Log in instead?"]
        return render_template("accounts/signup.html", **page), 409
    except PasswordPolicyError as exc:
        _throttle().succeeded(attempt)
        form.password.errors = [str(exc)]
        return render_template("accounts/signup.html", **page), 400
    _throttle().succeeded(attempt)
    login_user(user)
    audit("signup", user_id=user.id, address=address)
    response = redirect(next_url, code=303)
    devices.remember(request, response, user.email)
    return response


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
