"""Issuer settings, read once from the environment (and an optional `.env`).

Every setting is documented in the README with its default. Durations are in
seconds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer number of seconds, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


#: Names the database as a resource when nothing else is configured; an issuer in
#: front of several databases gives each its own.
DEFAULT_DATABASE_AUDIENCE = "urn:neon:database"


@dataclass
class Config:
    """What an issuer process needs to know. Tests build one directly."""

    issuer_url: str = "http://127.0.0.1:8001"
    keys_dir: Path = Path("keys")
    keys_passphrase: str | None = None
    database_url: str = "sqlite:///.data/issuer.sqlite3"
    # The audience of database tokens (RFC 8707 resource): what Neon (or the local
    # proxy) is told to require. Only clients allowed it get tokens that carry it.
    database_audience: str = DEFAULT_DATABASE_AUDIENCE
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    jwks_max_age: int = 300
    # A `next` key must be published this long before it may sign: longer than
    # any verifier's JWKS cache (Neon's proxy refreshes blocking after 1 h).
    rotation_min_published: int = 3900
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

    @property
    def userinfo_audience(self) -> str:
        """`aud` of access tokens for no resource: the issuer's own `/userinfo`, the only
        place that accepts them. Never the database's (see `oauth/__init__.py`)."""
        return f"{self.issuer_url}/userinfo"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        return cls(
            issuer_url=env.get("ISSUER_URL", cls.issuer_url).rstrip("/"),
            keys_dir=Path(env.get("ISSUER_KEYS_DIR", str(cls.keys_dir))),
            keys_passphrase=env.get("ISSUER_KEYS_PASSPHRASE") or None,
            database_url=env.get("ISSUER_DATABASE_URL", cls.database_url),
            # ISSUER_AUDIENCE is release 0.1's name: the one audience Neon was told.
            database_audience=env.get("ISSUER_DATABASE_AUDIENCE")
            or env.get("ISSUER_AUDIENCE")
            or cls.database_audience,
            access_token_ttl=_int(env, "ISSUER_ACCESS_TOKEN_TTL", cls.access_token_ttl),
            refresh_token_ttl=_int(env, "ISSUER_REFRESH_TOKEN_TTL", cls.refresh_token_ttl),
            jwks_max_age=_int(env, "ISSUER_JWKS_MAX_AGE", cls.jwks_max_age),
            rotation_min_published=_int(
                env, "ISSUER_ROTATION_MIN_PUBLISHED", cls.rotation_min_published
            ),
            leeway=_int(env, "ISSUER_LEEWAY", cls.leeway),
            secret_key=env.get("ISSUER_SECRET_KEY") or None,
            data_dir=Path(env.get("ISSUER_DATA_DIR", str(cls.data_dir))),
            signup_enabled=_bool(env, "ISSUER_SIGNUP", cls.signup_enabled),
            session_lifetime=_int(env, "ISSUER_SESSION_LIFETIME", cls.session_lifetime),
            login_max_failures=_int(env, "ISSUER_LOGIN_MAX_FAILURES", cls.login_max_failures),
            login_max_failures_per_address=_int(
                env, "ISSUER_LOGIN_MAX_FAILURES_PER_ADDRESS", cls.login_max_failures_per_address
            ),
            login_failure_window=_int(env, "ISSUER_LOGIN_FAILURE_WINDOW", cls.login_failure_window),
            trusted_proxies=_int(env, "ISSUER_TRUSTED_PROXIES", cls.trusted_proxies),
        )
