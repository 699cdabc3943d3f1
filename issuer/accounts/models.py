"""The accounts tables and the `User` value handed to the rest of the issuer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    false,
)

from issuer.db import metadata

# RFC 5321 caps a forward path at 256 octets including the brackets.
EMAIL_MAX_LENGTH = 254

users = Table(
    "users",
    metadata,
    # A random UUID, never reused: it is the `sub` of every token for this user.
    Column("id", String(36), primary_key=True),
    # Normalised (see emails.py) so that one mailbox is one account.
    Column("email", String(EMAIL_MAX_LENGTH), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    # Custom claims copied into this user's tokens, e.g. {"role": "admin"}.
    Column("claims", JSON, nullable=False, default=dict),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The owner proved they read mail at `email` (a link we sent was used, or an
    # operator said so). It is the `email_verified` claim.
    Column("email_verified", Boolean, nullable=False, default=False, server_default=false()),
)

account_links = Table(
    "account_links",
    metadata,
    # SHA-256 of the random token in the link we mailed: a database leak hands out
    # no working link.
    Column("id", String(64), primary_key=True),
    Column("purpose", String(32), nullable=False),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # What the link carries on (where to continue afterwards).
    Column("data", JSON, nullable=False, default=dict),
    # Epoch seconds.
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("used_at", Float),
    Index("account_links_user_purpose", "user_id", "purpose"),
)

login_sessions = Table(
    "login_sessions",
    metadata,
    # SHA-256 of the random token kept in the session cookie: a database
    # leak does not hand out live sessions.
    Column("id", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # Epoch seconds, compared numerically on every backend.
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Index("login_sessions_user_id", "user_id"),
    # How the user proved who they are (RFC 8176 values, space-separated): the
    # ID token's `amr`.
    Column("amr", String(64), nullable=False, server_default="pwd"),
    # What the account's security page shows, so its owner can tell sessions apart.
    Column("user_agent", String(200)),
    Column("address", String(64)),
)

totp_credentials = Table(
    "totp_credentials",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # The RFC 6238 secret, sealed with a key derived from the issuer's secret key
    # (`sealing.py`): a copy of the database alone mints no codes.
    Column("secret", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    # The newest 30-second step a code was accepted for: a code works once.
    Column("last_step", Integer, nullable=False, server_default="0"),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    # SHA-256 of a code (50 random bits): shown once, never stored.
    Column("id", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("used_at", Float),
    Index("recovery_codes_user_id", "user_id"),
)

passkeys = Table(
    "passkeys",
    metadata,
    # The WebAuthn credential id, base64url.
    Column("id", String(1400), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", Integer, nullable=False),
    Column("transports", JSON, nullable=False, default=list),
    # Synced between devices (a "software" key for `amr`) or bound to one.
    Column("backed_up", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Index("passkeys_user_id", "user_id"),
)

webauthn_challenges = Table(
    "webauthn_challenges",
    metadata,
    # SHA-256 of a ceremony's challenge: kept here so that it is spent once, even
    # by someone who replays the browser's older cookie.
    Column("digest", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("webauthn_challenges_expires_at", "expires_at"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # "account" (normalised email) or "address" (client IP, IPv6 per /64).
    Column("scope", String(16), nullable=False),
    Column("key", String(EMAIL_MAX_LENGTH), nullable=False),
    Column("at", Float, nullable=False),
    Index("login_failures_lookup", "scope", "key", "at"),
    Index("login_failures_at", "at"),
)


@dataclass(frozen=True)
class User:
    """An account as the issuer sees it: `id` is the token `sub`."""

    id: str
    email: str
    claims: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    email_verified: bool = False

    @classmethod
    def from_row(cls, row: Any) -> User:
        created_at = row.created_at
        if created_at.tzinfo is None:  # SQLite keeps no offset; we only write UTC.
            created_at = created_at.replace(tzinfo=UTC)
        return cls(
            id=row.id,
            email=row.email,
            claims=dict(row.claims or {}),
            disabled=bool(row.disabled),
            created_at=created_at,
            email_verified=bool(row.email_verified),
        )
