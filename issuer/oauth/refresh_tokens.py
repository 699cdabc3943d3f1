"""Refresh tokens: opaque, stored as SHA-256 digests, rotated on every use.

All refresh tokens descending from one authorization code form a family.
Presenting a token that was already rotated means two parties hold it (the
client and a thief), and we cannot tell which is which: the whole family is
revoked, so the newest token dies too (OAuth 2.0 Security BCP, RFC 9700 4.14).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import TokenMixin
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from issuer.db import metadata, secret_digest

refresh_tokens_table = Table(
    "oauth_refresh_tokens",
    metadata,
    Column("token_digest", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("auth_time", Integer, nullable=False),
    Column("issued_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=False),
    Column("rotated_at", Integer),
    Column("revoked_at", Integer),
    # Space-separated resources (RFC 8707) granted to the family.
    Column("resources", Text, nullable=False, server_default=""),
    Index("ix_oauth_refresh_tokens_family", "family_id"),
)


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class RefreshToken(TokenMixin):
    family_id: str
    client_id: str
    user_id: str
    scope: str
    auth_time: int
    resources: str = ""

    def check_client(self, client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope


def save(engine: Engine, token: str, item: RefreshToken, ttl: int) -> None:
    now = int(time.time())
    with engine.begin() as conn:
        conn.execute(
            insert(refresh_tokens_table).values(
                token_digest=secret_digest(token),
                issued_at=now,
                expires_at=now + ttl,
                **item.__dict__,
            )
        )


@dataclass(frozen=True)
class Presentation:
    """The outcome of presenting a refresh token: the token, or the family a replay burned."""

    token: RefreshToken | None
    replayed_family: str | None = None


_FIELDS = [refresh_tokens_table.c[f] for f in RefreshToken.__dataclass_fields__]


def rotate(engine: Engine, token: str, client_id: str) -> Presentation:
    """Consume a live token (atomically, so one of two racing uses loses).

    A token that was already rotated is a replay: its whole family is revoked
    in the same transaction. Tokens of other clients are not touched.
    """
    digest = secret_digest(token)
    now = int(time.time())
    t = refresh_tokens_table
    mine = (t.c.token_digest == digest, t.c.client_id == client_id)
    with engine.begin() as conn:
        claimed = conn.execute(
            update(t)
            .where(*mine, t.c.rotated_at.is_(None), t.c.revoked_at.is_(None), t.c.expires_at > now)
            .values(rotated_at=now)
            .returning(*_FIELDS)
        ).first()
        if claimed is not None:
            return Presentation(RefreshToken(**claimed._mapping))
        replayed = conn.execute(
            select(t.c.family_id).where(*mine, t.c.rotated_at.is_not(None))
        ).first()
        if replayed is None:
            return Presentation(None)
        _revoke_family(conn, replayed.family_id, now)
    return Presentation(None, replayed_family=replayed.family_id)


def find_live(engine: Engine, token: str) -> RefreshToken | None:
    """A live token, for revocation (RFC 7009)."""
    t = refresh_tokens_table
    digest = secret_digest(token)
    with engine.connect() as conn:
        row = conn.execute(
            select(*_FIELDS).where(
                t.c.token_digest == digest,
                t.c.rotated_at.is_(None),
                t.c.revoked_at.is_(None),
                t.c.expires_at > int(time.time()),
            )
        ).first()
    return None if row is None else RefreshToken(**row._mapping)


def revoke_family(engine: Engine, family_id: str) -> int:
    """Revoke every live token of a family; returns how many were live."""
    with engine.begin() as conn:
        return _revoke_family(conn, family_id, int(time.time()))


def revoke_user(conn: Connection, user_id: str) -> int:
    """Revoke every live token of every family of a user, in `conn`'s transaction."""
    t = refresh_tokens_table
    return conn.execute(
        update(t)
        .where(t.c.user_id == user_id, t.c.revoked_at.is_(None))
        .values(revoked_at=int(time.time()))
    ).rowcount


def live_clients(engine: Engine, user_id: str) -> dict[str, int]:
    """The clients holding a live refresh token of `user_id`, with when each family
    began (the earliest issue time still on record)."""
    t = refresh_tokens_table
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.client_id, func.min(t.c.auth_time))
            .where(
                t.c.user_id == user_id,
                t.c.rotated_at.is_(None),
                t.c.revoked_at.is_(None),
                t.c.expires_at > int(time.time()),
            )
            .group_by(t.c.client_id)
        )
        return {client_id: since for client_id, since in rows}


def revoke_client(engine: Engine, user_id: str, client_id: str) -> int:
    """Revoke every token a client holds for a user (the account page's "remove access")."""
    t = refresh_tokens_table
    with engine.begin() as conn:
        return conn.execute(
            update(t)
            .where(t.c.user_id == user_id, t.c.client_id == client_id, t.c.revoked_at.is_(None))
            .values(revoked_at=int(time.time()))
        ).rowcount


def _revoke_family(conn, family_id: str, now: int) -> int:
    t = refresh_tokens_table
    return conn.execute(
        update(t).where(t.c.family_id == family_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
    ).rowcount
