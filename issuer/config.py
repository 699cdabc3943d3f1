"""Issuer settings, read once from the environment (and an optional `.env`).

Every setting is documented in the README with its default. Durations are in
seconds. `from_env` checks every value (`envsettings.SettingError`, one line);
`check` the rules between them, so that a service refuses to start with a
setting it could not honour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from envsettings import Env, SettingError
from issuer.keys.errors import RotationPolicyError
from issuer.keys.policy import check_rotation_policy
from issuer.mail import SmtpServer, check_sender

#: Names the database as a resource when nothing else is configured; an issuer in
#: front of several databases gives each its own.
DEFAULT_DATABASE_AUDIENCE = "urn:neon:database"
KEY_STORES = ("files", "database")
#: A master key is derived without a work factor: it must be random, not a password.
MIN_MASTER_KEY = 32
#: A retry after a lost answer comes within seconds (Okta allows at most 60 s too).
MAX_REFRESH_REUSE_INTERVAL = 60


@dataclass
class Config:
    """What an issuer process needs to know. Tests build one directly."""

    issuer_url: str = "http://localhost:8001"
    keys_dir: Path = Path("keys")
    keys_passphrase: str | None = None
    # Where the key ring lives: "files" in keys_dir (one host), or "database" (the
    # issuer's database, sealed under the master key: a fleet shares it).
    keys_store: str = "files"
    keys_master_key: str | None = None
    keys_master_key_fallbacks: tuple[str, ...] = ()
    database_url: str = "sqlite:///.data/issuer.sqlite3"
    # The audience of database tokens (RFC 8707 resource): what Neon (or the local
    # proxy) is told to require. Only clients allowed it get tokens that carry it.
    database_audience: str = DEFAULT_DATABASE_AUDIENCE
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    # A rotated refresh token presented again this soon, while its successor is
    # unused, gets that successor again (a retry after a lost answer); 0: never.
    refresh_reuse_interval: int = 10
    # Garbage collection: every `gc_interval` seconds across the fleet (0: only
    # `python -m issuer gc`), deleting what expired more than `gc_retention` ago.
    gc_interval: int = 3600
    gc_retention: int = 24 * 3600
    # Serve /metrics on the issuer's own port (restrict it at the reverse proxy).
    metrics: bool = True
    # ...or only on this bind (host:port), off the public one.
    metrics_bind: str | None = None
    jwks_max_age: int = 300
    # Where to keep a copy of the JWKS for a static host or CDN (None: no copy).
    jwks_static_dir: Path | None = None
    # A `next` key must be published this long before it may sign: longer than
    # any verifier's JWKS cache (Neon's proxy refreshes blocking after 1 h).
    rotation_min_published: int = 3900
    # Rotate by schedule once the active key has signed this long (0: only by hand).
    rotation_period: int = 0
    # Verifiers allow this much clock skew on exp/nbf (Neon: 30 s).
    leeway: int = 30
    secret_key: str | None = None
    # Generated secrets (the session key when ISSUER_SECRET_KEY is unset).
    data_dir: Path = Path(".data")
    signup_enabled: bool = True
    session_lifetime: int = 8 * 3600
    # Failed logins allowed per window, per account and per client address.
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_failure_window: int = 15 * 60
    # Reverse proxies in front of the issuer whose X-Forwarded-For we trust
    # for client addresses (throttling); 0 ignores the header entirely.
    trusted_proxies: int = 0
    # Where mail goes (see `issuer.mail`): by default the local SMTP server `make run`
    # starts; `ISSUER_OUTBOX_DIR` is that server's Maildir, shown at /outbox.
    # Apps may sign in only accounts whose owner proved their address.
    require_verified_email: bool = True
    # Sign-ups per client address, and account mails (verification, reset) per
    # address asking and per account, each per hour.
    signup_max_per_address: int = 10
    mail_max_per_address: int = 20
    mail_max_per_account: int = 5
    smtp_url: str = "smtp://127.0.0.1:8025"
    smtp_ca_file: Path | None = None
    mail_from: str = "Own login <no-reply@localhost>"
    outbox_dir: Path | None = None

    def check(self) -> None:
        """The rules between settings (each alone was checked by `from_env`)."""
        try:
            check_rotation_policy(self.rotation_min_published, self.jwks_max_age)
        except RotationPolicyError as error:
            raise SettingError(str(error)) from None
        if self.keys_store == "database" and len(self.keys_master_key or "") < MIN_MASTER_KEY:
            raise SettingError(
                f"ISSUER_KEYS_STORE=database needs ISSUER_KEYS_MASTER_KEY of at least "
                f"{MIN_MASTER_KEY} random characters (the secret that seals the private keys "
                "in the database, the same on every issuer; e.g. "
                '`python -c "import secrets; print(secrets.token_urlsafe(32))"`)'
            )
        if self.rotation_period and self.rotation_period < self.rotation_min_published:
            raise SettingError(
                f"ISSUER_ROTATION_PERIOD ({self.rotation_period} s) must be 0 or at least "
                f"ISSUER_ROTATION_MIN_PUBLISHED ({self.rotation_min_published} s): a next key "
                "must be published that long before it signs"
            )
        if self.refresh_reuse_interval > MAX_REFRESH_REUSE_INTERVAL:
            raise SettingError(
                f"ISSUER_REFRESH_REUSE_INTERVAL must be at most {MAX_REFRESH_REUSE_INTERVAL}"
                " seconds: a longer window lets a stolen refresh token go unnoticed"
            )
        SmtpServer.from_url(self.smtp_url)
        check_sender(self.mail_from)
        if self.smtp_ca_file is not None and not self.smtp_ca_file.is_file():
            raise SettingError(f"ISSUER_SMTP_CA_FILE {self.smtp_ca_file} is not a file")

    @property
    def userinfo_audience(self) -> str:
        """`aud` of access tokens for no resource: the issuer's own `/userinfo`, the only
        place that accepts them. Never the database's (see `oauth/__init__.py`)."""
        return f"{self.issuer_url}/userinfo"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = Env(environ)
        config = cls(
            issuer_url=env.url("ISSUER_URL", cls.issuer_url),
            keys_dir=env.path("ISSUER_KEYS_DIR", cls.keys_dir),
            keys_passphrase=env.optional("ISSUER_KEYS_PASSPHRASE"),
            keys_store=env.choice("ISSUER_KEYS_STORE", cls.keys_store, KEY_STORES),
            keys_master_key=env.optional("ISSUER_KEYS_MASTER_KEY"),
            keys_master_key_fallbacks=tuple(
                secret.strip()
                for secret in (env.optional("ISSUER_KEYS_MASTER_KEY_FALLBACKS") or "").split(",")
                if secret.strip()
            ),
            database_url=env.text("ISSUER_DATABASE_URL", cls.database_url),
            # ISSUER_AUDIENCE is release 0.1's name: the one audience Neon was told.
            database_audience=env.text(
                "ISSUER_DATABASE_AUDIENCE", cls.database_audience, "ISSUER_AUDIENCE"
            ),
            access_token_ttl=env.seconds("ISSUER_ACCESS_TOKEN_TTL", cls.access_token_ttl),
            refresh_token_ttl=env.seconds("ISSUER_REFRESH_TOKEN_TTL", cls.refresh_token_ttl),
            refresh_reuse_interval=env.seconds(
                "ISSUER_REFRESH_REUSE_INTERVAL", cls.refresh_reuse_interval, minimum=0
            ),
            gc_interval=env.seconds("ISSUER_GC_INTERVAL", cls.gc_interval, minimum=0),
            gc_retention=env.seconds("ISSUER_GC_RETENTION", cls.gc_retention, minimum=0),
            metrics=env.boolean("ISSUER_METRICS", cls.metrics),
            metrics_bind=env.optional_bind("ISSUER_METRICS_BIND"),
            jwks_max_age=env.seconds("ISSUER_JWKS_MAX_AGE", cls.jwks_max_age, minimum=0),
            jwks_static_dir=env.optional_path("ISSUER_JWKS_STATIC_DIR"),
            rotation_min_published=env.seconds(
                "ISSUER_ROTATION_MIN_PUBLISHED", cls.rotation_min_published
            ),
            rotation_period=env.seconds("ISSUER_ROTATION_PERIOD", cls.rotation_period, minimum=0),
            leeway=env.seconds("ISSUER_LEEWAY", cls.leeway, minimum=0),
            secret_key=env.optional("ISSUER_SECRET_KEY"),
            data_dir=env.path("ISSUER_DATA_DIR", cls.data_dir),
            signup_enabled=env.boolean("ISSUER_SIGNUP", cls.signup_enabled),
            session_lifetime=env.seconds("ISSUER_SESSION_LIFETIME", cls.session_lifetime),
            login_max_failures=env.integer("ISSUER_LOGIN_MAX_FAILURES", cls.login_max_failures),
            login_max_failures_per_address=env.integer(
                "ISSUER_LOGIN_MAX_FAILURES_PER_ADDRESS", cls.login_max_failures_per_address
            ),
            login_failure_window=env.seconds(
                "ISSUER_LOGIN_FAILURE_WINDOW", cls.login_failure_window
            ),
            trusted_proxies=env.integer("ISSUER_TRUSTED_PROXIES", cls.trusted_proxies, minimum=0),
            require_verified_email=env.boolean(
                "ISSUER_REQUIRE_VERIFIED_EMAIL", cls.require_verified_email
            ),
            signup_max_per_address=env.integer(
                "ISSUER_SIGNUP_MAX_PER_ADDRESS", cls.signup_max_per_address
            ),
            mail_max_per_address=env.integer(
                "ISSUER_MAIL_MAX_PER_ADDRESS", cls.mail_max_per_address
            ),
            mail_max_per_account=env.integer(
                "ISSUER_MAIL_MAX_PER_ACCOUNT", cls.mail_max_per_account
            ),
            smtp_url=env.text("ISSUER_SMTP_URL", cls.smtp_url),
            smtp_ca_file=env.optional_path("ISSUER_SMTP_CA_FILE"),
            mail_from=env.text("ISSUER_MAIL_FROM", cls.mail_from),
            outbox_dir=env.optional_path("ISSUER_OUTBOX_DIR"),
        )
        return config
