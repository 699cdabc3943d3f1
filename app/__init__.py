"""The demo todo app: OIDC login against the issuer and todos read over Neon's SQL-over-HTTP."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from app import auth, console, errors, neon, oidc, store, views
from app.config import AppConfig
from app.logins import LoginStore
from private_files import load_or_create_secret
from servicemetrics import Metrics

SESSION_COOKIE = "app_session"
SECRET_KEY_FILE = "app-secret-key"  # noqa: S105 (a file name)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _browser_origins(config: AppConfig) -> list[str]:
    """Where the browser pages send queries themselves: the SQL endpoint and the Data API."""
    urls = [neon.sql_endpoint(config), config.data_api_url]
    return sorted({_origin(url) for url in urls if url})


def create_app(config: AppConfig | None = None) -> Flask:
    """Application factory: one app per config, blueprints per concern."""
    config = config or AppConfig.from_env()
    config.check()
    app = Flask(__name__)
    app.config.update(
        APP=config,
        SECRET_KEY=config.secret_key or load_or_create_secret(config.data_dir, SECRET_KEY_FILE),
        # The issuer on the same host uses `issuer_session`: distinct names, or
        # logging in to one would log you out of the other.
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=config.session_lifetime),
        # The login's lifetime is enforced server-side; re-signing the cookie
        # on every response would only cost time.
        SESSION_REFRESH_EACH_REQUEST=False,
        WTF_CSRF_TIME_LIMIT=None,
    )
    CSRFProtect(app)
    engine = store.init_app(app, config.store_url)
    app.extensions["logins"] = LoginStore(
        engine, config.data_dir / "app-locks", config.session_lifetime, config.refresh_margin
    )
    oidc.init_app(app, config, engine)
    for blueprint in (auth.bp, views.bp, console.bp):
        app.register_blueprint(blueprint)
    errors.init_app(app)
    app.jinja_env.globals["current_login"] = auth.current_login
    _init_headers(app, config)
    app.add_url_rule("/healthz", "healthz", lambda: ("ok\n", 200, {"Content-Type": "text/plain"}))
    Metrics("app").init_app(
        app, serve=config.metrics, bind=config.metrics_bind, ready=lambda: _not_ready(engine)
    )
    return app


def _not_ready(engine: Engine) -> str | None:
    """Ready when the app's own store answers (the issuer and Neon are checked by
    their own probes)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return "the store does not answer"
    return None


def _init_headers(app: Flask, config: AppConfig) -> None:
    """Security headers on every response, and `Server-Timing` for benchmarks."""
    policy = "; ".join(
        (
            "default-src 'self'",
            f"connect-src 'self' {' '.join(_browser_origins(config))}",
            # Chrome applies form-action to the redirects after a submit:
            # logging out ends at the issuer.
            f"form-action 'self' {_origin(config.issuer_url)}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        )
    )

    @app.before_request
    def start_clock() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        total = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        db = g.get("db_seconds", 0.0) * 1000
        response.headers["Server-Timing"] = f"app;dur={total - db:.2f}, db;dur={db:.2f}"
        return response
