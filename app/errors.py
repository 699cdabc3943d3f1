"""Every failure a user can cause or meet, as a page that says what happened.

Nothing here shows a stack trace. Scripts (the SQL console, the enhanced
forms) ask for JSON with `Accept: application/json` and get the same facts
as `{"error": ..., "message": ...}`.
"""

from __future__ import annotations

from flask import Flask, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.auth import forget_login
from app.config import AppConfig
from app.data_api import DataApiError
from app.logins import IssuerUnreachable, SessionExpired
from app.neon import sql_endpoint
from app.todos import InvalidTask
from neon_http import EndpointUnreachable, NeonDbError

# SQLSTATE classes that mean "the schema is not there": migrations not applied.
_NOT_SET_UP = ("42P01", "42883", "3F000", "3D000")
# PostgREST's own words for them: no such function, no such table in its schema cache.
_DATA_API_NOT_SET_UP = ("PGRST202", "PGRST205")


# What the endpoint says (code "") when it refuses the bearer token itself,
# as opposed to the request (Neon answers both with HTTP 400).
_TOKEN_REFUSALS = ("jwt", "jwk", "token", "signature", "key id", "audience")


def _refuses_token(error: NeonDbError) -> bool:
    if error.status in (401, 403):
        return True
    message = error.message.lower()
    return error.status == 400 and any(word in message for word in _TOKEN_REFUSALS)


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def error_page(status: int, error: str, title: str, message: str) -> ResponseReturnValue:
    if _wants_json():
        return jsonify(error=error, message=message), status
    return render_template("error.html", status=status, title=title, message=message), status


def _session_expired(_error: SessionExpired) -> ResponseReturnValue:
    forget_login()
    message = "Your session has expired. Please sign in again."
    if _wants_json():
        return jsonify(error="session_expired", message=message, login=url_for("auth.login")), 401
    flash(message, "warning")
    if request.endpoint == "todos.index":
        # Rendered, not redirected: a cookie the browser keeps re-sending
        # (a stale copy) must not turn into a redirect loop.
        return render_template("welcome.html")
    return redirect(url_for("todos.index"), code=303)


def _issuer_unreachable(_error: IssuerUnreachable) -> ResponseReturnValue:
    config: AppConfig = current_app.config["APP"]
    return error_page(
        503,
        "issuer_unreachable",
        "The login service is unreachable",
        f"The issuer at {config.issuer_url} did not answer. Your todos are safe; "
        "try again in a moment.",
    )


def _database_unreachable(_error: EndpointUnreachable) -> ResponseReturnValue:
    config: AppConfig = current_app.config["APP"]
    if config.database_api == "data_api":
        where = f"The Data API at {config.data_api_url}"
    else:
        where = f"The SQL endpoint at {sql_endpoint(config)}"
    return error_page(
        503,
        "database_unreachable",
        "The database is unreachable",
        f"{where} did not answer. Nothing was changed; try again in a moment.",
    )


def _token_refused(message: str) -> ResponseReturnValue:
    """The endpoint refused the token itself (expired, revoked key, wrong
    audience): only a new login helps."""
    current_app.logger.warning("the database refused the token: %s", message)
    return _session_expired(SessionExpired(message))


def _database_error(error: NeonDbError) -> ResponseReturnValue:
    """Map the SQL endpoint's answer to what the user can do about it."""
    if error.status >= 500:
        return _database_unreachable(EndpointUnreachable(error.message))
    if not error.code and _refuses_token(error):
        return _token_refused(error.message)
    if not error.code:
        current_app.logger.error("the SQL endpoint refused the request: %s", error.message)
        return error_page(400, "request_refused", "The database refused the request", error.message)
    return _statement_refused(error.code, error.message)


def _data_api_error(error: DataApiError) -> ResponseReturnValue:
    """The same for the Data API, whose codes are SQLSTATEs or PostgREST's `PGRST…`."""
    if error.status == 401 or error.code.startswith("PGRST3"):
        return _token_refused(error.message)
    if error.code in _DATA_API_NOT_SET_UP:
        return _not_set_up(error.message)
    is_sqlstate = len(error.code) == 5 and not error.code.startswith("PGRST")
    if not is_sqlstate and error.status >= 500:
        return _database_unreachable(EndpointUnreachable(error.message))
    if not is_sqlstate:
        current_app.logger.error("the Data API refused the request: %s", error)
        return error_page(400, "request_refused", "The database refused the request", error.message)
    return _statement_refused(error.code, error.message)


def _not_set_up(message: str) -> ResponseReturnValue:
    return error_page(
        503,
        "database_not_set_up",
        "The database is not set up",
        f"{message}. Apply the schema with `make migrate` (or `make neon-setup`).",
    )


def _statement_refused(code: str, message: str) -> ResponseReturnValue:
    """Postgres refused the statement: `code` is its SQLSTATE."""
    if code in _NOT_SET_UP:
        return _not_set_up(message)
    if code == "42501":
        return error_page(403, "forbidden", "The database refused", message)
    if code.startswith(("22", "23")):
        return error_page(400, "invalid_input", "The database rejected the input", message)
    current_app.logger.error("unexpected database error: %s (%s)", message, code)
    return error_page(502, "database_error", "The database answered with an error", message)


def _invalid_task(error: InvalidTask) -> ResponseReturnValue:
    return error_page(400, "invalid_task", "That todo cannot be saved", str(error))


def _csrf_failed(_error: CSRFError) -> ResponseReturnValue:
    return error_page(
        400,
        "csrf_failed",
        "This form has expired",
        "The form was open too long or came from another site. Go back, reload the page and try again.",
    )


def _http_error(error: HTTPException) -> ResponseReturnValue:
    code = error.code or 500
    description = error.description if code < 500 else "Something went wrong on our side."
    return error_page(code, error.name.lower().replace(" ", "_"), error.name, description)


def _unexpected(_error: Exception) -> ResponseReturnValue:
    current_app.logger.exception("unhandled error")
    return error_page(500, "internal_error", "Something went wrong", "The error has been logged.")


def init_app(app: Flask) -> None:
    app.register_error_handler(SessionExpired, _session_expired)
    app.register_error_handler(IssuerUnreachable, _issuer_unreachable)
    app.register_error_handler(EndpointUnreachable, _database_unreachable)
    app.register_error_handler(NeonDbError, _database_error)
    app.register_error_handler(DataApiError, _data_api_error)
    app.register_error_handler(InvalidTask, _invalid_task)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
