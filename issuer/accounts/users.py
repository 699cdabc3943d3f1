"""Users: creating, finding, authenticating and disabling accounts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from issuer.accounts import events, links, passwords
from issuer.accounts.claims import validate_claims
from issuer.accounts.emails import normalize_email
from issuer.accounts.models import (
    User,
    account_links,
    login_sessions,
    passkeys,
    recovery_codes,
    totp_credentials,
    users,
)


class AccountError(Exception):
    """A user-facing refusal (duplicate email, unknown user)."""


class DuplicateEmailError(AccountError):
    pass


class UnknownUserError(AccountError):
    pass


def create_user(
    engine: Engine,
    email: str,
    password: str,
    claims: dict[str, Any] | None = None,
    *,
    email_verified: bool = False,
) -> User:
    """Validate everything first, then write one row: no partial accounts."""
    user = User(
        id=str(uuid.uuid4()),
        email=normalize_email(email),
        claims=validate_claims(dict(claims or {})),
        created_at=datetime.now(UTC),
        email_verified=email_verified,
    )
    password_hash = passwords.hash_password(password)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(users).values(
                    id=user.id,
                    email=user.email,
                    password_hash=password_hash,
                    claims=user.claims,
                    disabled=False,
                    created_at=user.created_at,
                    email_verified=email_verified,
                )
            )
    except IntegrityError:
        raise DuplicateEmailError(f"An account for {user.email} already exists.") from None
    return user


def get_user(engine: Engine, user_id: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return User.from_row(row) if row else None


def find_user(engine: Engine, email: str) -> User | None:
    """By email as typed; None for unknown or unparseable addresses."""
    try:
        email = normalize_email(email)
    except ValueError:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == email)).first()
    return User.from_row(row) if row else None


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.created_at, users.c.email))
        return [User.from_row(row) for row in rows]


def set_disabled(engine: Engine, email: str, disabled: bool) -> User:
    """Disabling also ends the user's login sessions at once."""
    email = normalize_email(email)
    with engine.begin() as conn:
        row = conn.execute(
            update(users)
            .where(users.c.email == email)
            .values(disabled=disabled)
            .returning(*users.c)
        ).first()
        if row is None:
            raise UnknownUserError(f"No account for {email}.")
        if disabled:
            conn.execute(delete(login_sessions).where(login_sessions.c.user_id == row.id))
    return User.from_row(row)


def remove_user(conn: Connection, user_id: str) -> None:
    """In `conn`'s transaction, after `events.credentials_changed` ended its tokens.

    The rows that hang off the account go first, by hand: their foreign keys say
    ON DELETE CASCADE, but SQLite enforces none unless every connection asks."""
    for table in (account_links, login_sessions, totp_credentials, recovery_codes, passkeys):
        conn.execute(delete(table).where(table.c.user_id == user_id))
    conn.execute(delete(users).where(users.c.id == user_id))


def password_hash(engine: Engine, user_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(users.c.password_hash).where(users.c.id == user_id)
        ).scalar_one_or_none()


def change_email(conn: Connection, user_id: str, email: str) -> User | None:
    """Move the account to `email` (proven by a link), in `conn`'s transaction;
    returns the account as it was. DuplicateEmailError when another account has it
    (the caller's transaction must then roll back)."""
    old = conn.execute(select(users).where(users.c.id == user_id)).first()
    if old is None:
        return None
    try:
        conn.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(email=normalize_email(email), email_verified=True)
        )
    except IntegrityError:
        raise DuplicateEmailError(f"An account for {email} already exists.") from None
    # Links mailed before the move (to the old address, or to other new ones) stop.
    for purpose in (links.VERIFY_EMAIL, links.RESET_PASSWORD, links.CHANGE_EMAIL):
        links.void(conn, user_id, purpose)
    return User.from_row(old)


def set_email_verified(engine: Engine, email: str, verified: bool = True) -> User:
    """An operator vouches for (or withdraws) an address."""
    email = normalize_email(email)
    with engine.begin() as conn:
        row = conn.execute(
            update(users)
            .where(users.c.email == email)
            .values(email_verified=verified)
            .returning(*users.c)
        ).first()
    if row is None:
        raise UnknownUserError(f"No account for {email}.")
    return User.from_row(row)


def mark_verified(conn: Connection, user_id: str) -> User | None:
    """In `conn`'s transaction (with the link that proved it)."""
    row = conn.execute(
        update(users).where(users.c.id == user_id).values(email_verified=True).returning(*users.c)
    ).first()
    return User.from_row(row) if row else None


def set_password(conn: Connection, user_id: str, password: str) -> User | None:
    """A new password, in `conn`'s transaction; every login session of the account
    ends and `events.credentials_changed` revokes what else it holds (refresh tokens)."""
    password_hash = passwords.hash_password(password)
    row = conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash)
        .returning(*users.c)
    ).first()
    if row is None:
        return None
    conn.execute(delete(login_sessions).where(login_sessions.c.user_id == user_id))
    # Whoever asked for them with the old password (a move of the address, say) or
    # holds an older reset link is left with nothing.
    links.void(conn, user_id, links.CHANGE_EMAIL)
    links.void(conn, user_id, links.RESET_PASSWORD)
    events.credentials_changed.send(conn, user_id=user_id)
    return User.from_row(row)


@dataclass(frozen=True)
class Authentication:
    """The outcome of a login attempt. `reason` is for the audit log only:
    the person at the keyboard gets the same answer for every failure."""

    user: User | None
    reason: str
    # The account tried, when it exists, for the audit log.
    user_id: str | None = None


def authenticate(engine: Engine, email: str, password: str) -> Authentication:
    """Check a password for a normalised `email`, spending one argon2
    verification on every path, so that unknown users cost the same time."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == email)).first()
    if row is None:
        passwords.burn_verification(password)
        return Authentication(None, "unknown_user")
    if not passwords.verify_password(row.password_hash, password):
        return Authentication(None, "bad_password", row.id)
    user = User.from_row(row)
    if user.disabled:
        return Authentication(None, "disabled", row.id)
    if passwords.needs_rehash(row.password_hash):
        new_hash = passwords.hasher.hash(password)
        with engine.begin() as conn:
            conn.execute(
                update(users)
                .where(users.c.id == user.id, users.c.password_hash == row.password_hash)
                .values(password_hash=new_hash)
            )
    return Authentication(user, "ok", user.id)
