"""Single-use links we mail: email verification and password reset.

A link carries 256 random bits; we keep only their SHA-256, the account, the
purpose, an expiry and what the link continues to. Using one is a conditional
update in the caller's transaction (`redeem`), so a link works once however many
requests race for it, and its effect (a verified address, a new password) is
written with it or not at all. Issuing a link for a purpose voids that account's
earlier unused ones: only the newest mail works.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from issuer.accounts.models import account_links
from issuer.db import secret_digest

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a password)
CHANGE_EMAIL = "change_email"

#: How long each kind of link works, in seconds.
LIFETIMES = {VERIFY_EMAIL: 24 * 3600, RESET_PASSWORD: 30 * 60, CHANGE_EMAIL: 24 * 3600}


class LinkError(Exception):
    """The link cannot be used: unknown (or tampered), expired, or used already.
    `reason` is for the audit trail; people see one message for all three."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Link:
    user_id: str
    purpose: str
    data: dict[str, Any]


def issue(engine: Engine, user_id: str, purpose: str, data: dict[str, Any] | None = None) -> str:
    """A new link token for `user_id`; the account's earlier `purpose` links stop working."""
    token = secrets.token_urlsafe(32)
    now = time.time()
    t = account_links
    with engine.begin() as conn:
        conn.execute(
            delete(t).where(
                ((t.c.user_id == user_id) & (t.c.purpose == purpose)) | (t.c.expires_at <= now)
            )
        )
        conn.execute(
            insert(t).values(
                id=secret_digest(token),
                purpose=purpose,
                user_id=user_id,
                data=dict(data or {}),
                created_at=now,
                expires_at=now + LIFETIMES[purpose],
                used_at=None,
            )
        )
    return token


def check(engine: Engine, token: str, purpose: str) -> Link:
    """The link, if it would work now (to show its page); nothing is used up."""
    with engine.connect() as conn:
        return _check(conn, token, purpose, time.time())


def redeem(conn: Connection, token: str, purpose: str) -> Link:
    """Use the link up, in `conn`'s transaction: exactly one caller ever succeeds."""
    now = time.time()
    link = _check(conn, token, purpose, now)
    t = account_links
    used = conn.execute(
        update(t)
        .where(t.c.id == secret_digest(token), t.c.used_at.is_(None), t.c.expires_at > now)
        .values(used_at=now)
    )
    if used.rowcount != 1:
        raise LinkError("used")  # another request used it in between
    return link


def _check(conn: Connection, token: str, purpose: str, now: float) -> Link:
    t = account_links
    row = conn.execute(
        select(t).where(t.c.id == secret_digest(token), t.c.purpose == purpose)
    ).first()
    if row is None:
        raise LinkError("unknown")
    if row.used_at is not None:
        raise LinkError("used")
    if row.expires_at <= now:
        raise LinkError("expired")
    return Link(row.user_id, row.purpose, dict(row.data or {}))


def void(conn: Connection, user_id: str, purpose: str) -> None:
    """The account's unused `purpose` links stop working (the password changed, say)."""
    t = account_links
    conn.execute(
        delete(t).where(t.c.user_id == user_id, t.c.purpose == purpose, t.c.used_at.is_(None))
    )
