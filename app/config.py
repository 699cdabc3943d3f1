"""Todo app settings, read once from the environment (and an optional `.env`).

Every setting is documented in the README with its default. Durations are in
seconds. The names `ISSUER_URL`, `DATABASE_AUTHENTICATED_URL` and
`NEON_HTTP_ENDPOINT` are shared with the rest of the stack and with Neon's guides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def _seconds(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


@dataclass
class AppConfig:
    """What an app process needs to know. Tests build one directly."""

    app_url: str = "http://127.0.0.1:8000"
    issuer_url: str = "http://127.0.0.1:8001"
    client_id: str = ""
    client_secret: str = ""
    database_authenticated_url: str = "postgresql://authenticated@localhost/neondb"
    # The resource (RFC 8707) the app asks the issuer for: the audience the database
    # requires (the issuer's ISSUER_DATABASE_AUDIENCE, Neon's JWT audience).
    database_audience: str = "urn:neon:database"
    # None: derive `https://apiauth.<host>/sql` from the connection string, as
    # Neon's own driver does. Locally this points at the proxy.
    sql_endpoint: str | None = None
    # Server-side sessions and the tokens they hold.
    database_url: str = "sqlite:///.data/app.sqlite3"
    data_dir: Path = Path(".data")
    secret_key: str | None = None
    session_lifetime: int = 8 * 3600
    # Refresh the access token this long before it expires, so that a query
    # never leaves with a token about to lapse in flight.
    refresh_margin: int = 60
    http_timeout: int = 10
    scope: str = "openid profile email"

    @property
    def redirect_uri(self) -> str:
        return f"{self.app_url}/auth/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"{self.app_url}/"

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.app_url).scheme == "https"

    def check(self) -> None:
        """Refuse to start half-configured: the login cannot work without a client."""
        if not self.client_id or not self.client_secret:
            raise ValueError(
                "APP_CLIENT_ID and APP_CLIENT_SECRET must be set: register the app with "
                "`python -m issuer clients add --confidential --first-party ...` "
                "(`make run` does this for you)"
            )
        for name, url in (("APP_URL", self.app_url), ("ISSUER_URL", self.issuer_url)):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{name} must be an http(s) URL, got {url!r}")

    @classmethod
    def from_env(cls) -> AppConfig:
        env = os.environ
        return cls(
            app_url=env.get("APP_URL", cls.app_url).rstrip("/"),
            issuer_url=env.get("ISSUER_URL", cls.issuer_url).rstrip("/"),
            client_id=env.get("APP_CLIENT_ID", ""),
            client_secret=env.get("APP_CLIENT_SECRET", ""),
            database_authenticated_url=env.get(
                "DATABASE_AUTHENTICATED_URL", cls.database_authenticated_url
            ),
            database_audience=env.get("APP_DATABASE_AUDIENCE") or cls.database_audience,
            sql_endpoint=env.get("NEON_HTTP_ENDPOINT") or None,
            database_url=env.get("APP_DATABASE_URL", cls.database_url),
            data_dir=Path(env.get("APP_DATA_DIR", str(cls.data_dir))),
            secret_key=env.get("APP_SECRET_KEY") or None,
            session_lifetime=_seconds("APP_SESSION_LIFETIME", cls.session_lifetime),
            refresh_margin=_seconds("APP_REFRESH_MARGIN", cls.refresh_margin),
            http_timeout=_seconds("APP_HTTP_TIMEOUT", cls.http_timeout),
        )
