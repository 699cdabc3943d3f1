"""Todo app settings, read once from the environment (and an optional `.env`).

Every setting is documented in the README with its default. Durations are in
seconds. The names `ISSUER_URL`, `DATABASE_AUTHENTICATED_URL` and
`NEON_HTTP_ENDPOINT` are shared with the rest of the stack and with Neon's guides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from envsettings import Env, SettingError, check_url

DATABASE_APIS = ("sql", "data_api")


@dataclass
class AppConfig:
    """What an app process needs to know. Tests build one directly."""

    app_url: str = "http://localhost:8000"
    issuer_url: str = "http://localhost:8001"
    client_id: str = ""
    client_secret: str = ""
    database_authenticated_url: str = "postgresql://authenticated@localhost/neondb"
    # The resource (RFC 8707) the app asks the issuer for: the audience the database
    # requires (the issuer's ISSUER_DATABASE_AUDIENCE, Neon's JWT audience).
    database_audience: str = "urn:neon:database"
    # None: derive `https://apiauth.<host>/sql` from the connection string, as
    # Neon's own driver does. Locally this points at the proxy.
    sql_endpoint: str | None = None
    # How the app reaches its rows: "sql" (SQL over HTTP, Neon's `/sql`) or
    # "data_api" (Neon's Data API, PostgREST, at `data_api_url`).
    database_api: str = "sql"
    # The Data API's REST URL as Neon's console shows it (`https://<endpoint>/<db>/rest/v1`).
    data_api_url: str | None = None
    # The app's own store: server-side sessions and the tokens they hold.
    store_url: str = "sqlite:///.data/app.sqlite3"
    data_dir: Path = Path(".data")
    secret_key: str | None = None
    session_lifetime: int = 8 * 3600
    # Refresh the access token this long before it expires, so that a query
    # never leaves with a token about to lapse in flight.
    refresh_margin: int = 60
    http_timeout: int = 10
    scope: str = "openid profile email"
    # Serve /metrics on the app's own port (restrict it at the reverse proxy).
    metrics: bool = True
    # ...or only on this bind (host:port), off the public one.
    metrics_bind: str | None = None

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
            raise SettingError(
                "APP_CLIENT_ID and APP_CLIENT_SECRET must be set: register the app with "
                "`python -m issuer clients add --confidential --first-party --audience … ...` "
                "(`make run` does this for you)"
            )
        for name, url in (("APP_URL", self.app_url), ("ISSUER_URL", self.issuer_url)):
            check_url(name, url)
        if self.sql_endpoint is not None:
            check_url("NEON_HTTP_ENDPOINT", self.sql_endpoint)
        if self.database_api not in DATABASE_APIS:
            raise SettingError(
                f"APP_DATABASE_API must be one of {', '.join(DATABASE_APIS)}, got {self.database_api!r}"
            )
        if self.database_api == "data_api":
            if not self.data_api_url:
                raise SettingError(
                    "APP_DATABASE_API=data_api needs APP_DATA_API_URL: the Data API URL Neon's "
                    "console shows (https://<endpoint>/<database>/rest/v1)"
                )
            check_url("APP_DATA_API_URL", self.data_api_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppConfig:
        env = Env(environ)
        return cls(
            app_url=env.url("APP_URL", cls.app_url),
            issuer_url=env.url("ISSUER_URL", cls.issuer_url),
            client_id=env.text("APP_CLIENT_ID", ""),
            client_secret=env.text("APP_CLIENT_SECRET", ""),
            database_authenticated_url=env.text(
                "DATABASE_AUTHENTICATED_URL", cls.database_authenticated_url
            ),
            database_audience=env.text("APP_DATABASE_AUDIENCE", cls.database_audience),
            sql_endpoint=env.optional("NEON_HTTP_ENDPOINT"),
            database_api=env.choice("APP_DATABASE_API", cls.database_api, DATABASE_APIS),
            data_api_url=env.optional("APP_DATA_API_URL"),
            # APP_DATABASE_URL is release 0.1's name for it.
            store_url=env.text("APP_STORE_URL", cls.store_url, "APP_DATABASE_URL"),
            data_dir=env.path("APP_DATA_DIR", cls.data_dir),
            secret_key=env.optional("APP_SECRET_KEY"),
            session_lifetime=env.seconds("APP_SESSION_LIFETIME", cls.session_lifetime),
            refresh_margin=env.seconds("APP_REFRESH_MARGIN", cls.refresh_margin, minimum=0),
            http_timeout=env.seconds("APP_HTTP_TIMEOUT", cls.http_timeout),
            metrics=env.boolean("APP_METRICS", cls.metrics),
            metrics_bind=env.optional_bind("APP_METRICS_BIND"),
        )
