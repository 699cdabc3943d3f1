"""SQL and the Data API from the browser, as in Neon's Clerk and Descope samples.

The pages' scripts ask us for the user's current access token and send SQL
straight to the SQL endpoint (or call the Data API with Supabase's postgrest-js)
with it: the app is not in the path, so
whatever the browser sees, RLS alone decided. The token is the same
short-lived (15 min by default) access token the app itself uses, handed out
only to a same-origin POST carrying the CSRF token, and never cached.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, current_app, g, jsonify, render_template
from flask.typing import ResponseReturnValue

from app import neon
from app.auth import fresh_login, login_required
from app.config import AppConfig

bp = Blueprint("console", __name__)


def public_connection_string(config: AppConfig) -> str:
    """The connection string without any password: the browser needs only
    the role, host and database (the token is the credential)."""
    parts = urlsplit(config.database_authenticated_url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@bp.get("/sql")
@login_required
def page() -> ResponseReturnValue:
    return render_template("console.html")


@bp.get("/data-api")
@login_required
def data_api_page() -> ResponseReturnValue:
    config: AppConfig = current_app.config["APP"]
    return render_template("data_api.html", data_api_url=config.data_api_url)


@bp.post("/sql/token")
def token() -> ResponseReturnValue:
    fresh_login()
    config: AppConfig = current_app.config["APP"]
    response = jsonify(
        access_token=g.login.access_token,
        expires_at=int(g.login.access_expires_at),
        endpoint=neon.sql_endpoint(config),
        connection_string=public_connection_string(config),
        data_api_url=config.data_api_url,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
