"""Refresh tokens: opaque, stored as SHA-256 digests, rotated on every use.

All refresh tokens descending from one authorization code form a family.
Presenting a token that was already rotated means two parties hold it (the
client and a thief), and we cannot tell which is which: the whole family is
revoked, so the newest token dies too (OAuth 2.0 Security BCP, RFC 9700 4.14).

One exception, the reuse window (Dex's `reuseInterval`, Auth0's rotation overlap):
a client whose answer was lost (a timeout) presents the same token again within a
few seconds. As long as the successor is unused, it gets that successor once more,
so no second family starts and no login ends. The successor is stored sealed under
a key derived from the token it replaced, which is stored only as a digest: only
whoever presents that token can open it, and a copy of the table opens nothing.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import TokenMixin
from cryptography.exceptions import InvalidTag
from sqlalchemy import (
    Column,
    ColumnElement,
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

from issuer import aead
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
    # Set by the rotation: the successor's digest, and the successor itself sealed
    # under this token (see the module's docstring).
    Column("successor_digest", String(64)),
    Column("successor_sealed", Text),
    Index("ix_oauth_refresh_tokens_family", "family_id"),
)

_SEAL_INFO = b"refresh token successor v1"


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
    """The outcome of presenting a refresh token: the grant it carries and the token
    that replaces it (new, or the same again for a retry inside the reuse window),
    or the family a replay burned."""

    token: RefreshToken | None
    successor: str | None = None
    retried: bool = False
    replayed_family: str | None = None


_FIELDS = [refresh_tokens_table.c[f] for f in RefreshToken.__dataclass_fields__]


def rotate(
    engine: Engine,
    token: str,
    client_id: str,
    *,
    ttl: int,
    reuse_interval: int,
    scope: str | None = None,
) -> Presentation:
    """Consume a live token and store its successor (for `scope`, if narrower), in
    one transaction, so that one of two racing uses wins and the other finds the
    successor already there.

    A token rotated at most `reuse_interval` seconds ago whose successor is still
    unused is a retry: the same successor again. Any other presentation of a rotated
    token is a replay: the whole family is revoked in the same transaction. Tokens
    of other clients are not touched.
    """
    digest = secret_digest(token)
    now = int(time.time())
    successor = new_token()
    t = refresh_tokens_table
    mine = (t.c.token_digest == digest, t.c.client_id == client_id)
    with engine.begin() as conn:
        claimed = conn.execute(
            update(t)
            .where(*mine, t.c.rotated_at.is_(None), t.c.revoked_at.is_(None), t.c.expires_at > now)
            .values(
                rotated_at=now,
                successor_digest=secret_digest(successor),
                successor_sealed=_seal(token, successor),
            )
            .returning(*_FIELDS)
        ).first()
        if claimed is not None:
            grant = RefreshToken(**{**claimed._mapping, "scope": scope or claimed.scope})
            conn.execute(
                insert(t).values(
                    token_digest=secret_digest(successor),
                    issued_at=now,
                    expires_at=now + ttl,
                    **grant.__dict__,
                )
            )
            return Presentation(grant, successor)
        rotated = conn.execute(
            select(
                t.c.family_id,
                t.c.rotated_at,
                t.c.revoked_at,
                t.c.successor_digest,
                t.c.successor_sealed,
            ).where(*mine, t.c.rotated_at.is_not(None))
        ).first()
        if rotated is None:
            return Presentation(None)
        retry = (
            None
            if rotated.revoked_at is not None
            else _retry(conn, token, rotated, now, reuse_interval)
        )
        if retry is not None:
            return retry
        _revoke_family(conn, rotated.family_id, now)
    return Presentation(None, replayed_family=rotated.family_id)


def _retry(conn: Connection, token: str, rotated, now: int, reuse_interval: int):
    """The same successor again, if `rotated` was rotated inside the window and its
    successor is still live and unused; else None."""
    if reuse_interval <= 0 or now - rotated.rotated_at > reuse_interval:
        return None
    if rotated.successor_sealed is None:  # rotated before the window existed
        return None
    t = refresh_tokens_table
    live = conn.execute(
        select(*_FIELDS).where(
            t.c.token_digest == rotated.successor_digest,
            t.c.rotated_at.is_(None),
            t.c.revoked_at.is_(None),
            t.c.expires_at > now,
        )
    ).first()
    if live is None:
        return None
    try:
        successor = _unseal(token, rotated.successor_sealed)
    except (InvalidTag, ValueError):
        return None
    return Presentation(RefreshToken(**live._mapping), successor, retried=True)


def _seal(token: str, successor: str) -> str:
    return aead.seal(aead.derive(token, _SEAL_INFO), successor.encode())


def _unseal(token: str, sealed: str) -> str:
    return aead.unseal(aead.derive(token, _SEAL_INFO), sealed).decode()


def find_rotated(engine: Engine, token: str) -> RefreshToken | None:
    """A token already rotated and not revoked: its family is still someone's."""
    t = refresh_tokens_table
    with engine.connect() as conn:
        row = conn.execute(
            select(*_FIELDS).where(
                t.c.token_digest == secret_digest(token),
                t.c.rotated_at.is_not(None),
                t.c.revoked_at.is_(None),
            )
        ).first()
    return None if row is None else RefreshToken(**row._mapping)


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
    return _revoke_all(conn, t.c.user_id == user_id)


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
        return _revoke_all(conn, t.c.user_id == user_id, t.c.client_id == client_id)


def _revoke_family(conn: Connection, family_id: str, now: int) -> int:
    return _revoke_all(conn, refresh_tokens_table.c.family_id == family_id, now=now)


def _revoke_all(conn: Connection, *which: ColumnElement[bool], now: int | None = None) -> int:
    """Revoke the live tokens `which` selects, until none is left.

    One UPDATE is not enough on PostgreSQL (READ COMMITTED): it waits for a rotation
    that holds a token's row, then revokes that token but cannot see the successor
    the rotation inserted. The next statement sees it; the loop ends when a
    statement finds nothing left to revoke."""
    t = refresh_tokens_table
    now = int(time.time()) if now is None else now
    total = 0
    while True:
        revoked = conn.execute(
            update(t).where(*which, t.c.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
        if not revoked:
            return total
        total += revoked
