"""Authorization codes: short-lived, single-use, stored only as a SHA-256 digest.

Each code carries the id of the token family it starts, so a replayed code
can revoke every refresh token issued from it (RFC 6749 section 4.1.2).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from authlib.oidc.core import AuthorizationCodeMixin
from sqlalchemy import Column, Engine, Index, Integer, String, Table, Text, insert, select, update

from issuer.db import metadata, secret_digest

#: Seconds a code may wait for its redemption.
CODE_TTL = 60

codes_table = Table(
    "oauth_authorization_codes",
    metadata,
    Column("code_digest", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("nonce", Text),
    Column("auth_time", Integer, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("code_challenge_method", String(8), nullable=False),
    Column("family_id", String(64), nullable=False),
    Column("expires_at", Integer, nullable=False),
    Column("used_at", Integer),
    # Space-separated resources (RFC 8707) the user granted with this code.
    Column("resources", Text, nullable=False, server_default=""),
    # How the user authenticated (RFC 8176, space-separated), for the ID token's `amr`.
    Column("amr", Text, nullable=False, server_default=""),
    Index("ix_oauth_authorization_codes_nonce", "client_id", "nonce"),
)


@dataclass(frozen=True)
class AuthorizationCode(AuthorizationCodeMixin):
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    auth_time: int
    code_challenge: str
    code_challenge_method: str
    family_id: str
    resources: str = ""
    amr: str = ""

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


def save(engine: Engine, code: str, item: AuthorizationCode) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(codes_table).values(
                code_digest=secret_digest(code),
                expires_at=int(time.time()) + CODE_TTL,
                **item.__dict__,
            )
        )


def new_family_id() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Redemption:
    """The outcome of presenting a code: the code, or the family a replay burned."""

    code: AuthorizationCode | None
    replayed_family: str | None = None


def redeem(engine: Engine, code: str, client_id: str) -> Redemption:
    """Mark the code used and return it, atomically: two racing requests cannot both win.

    A code presented by another client is not burnt (that client cannot
    have seen it from the redirect), an already used one reports its family.
    """
    digest = secret_digest(code)
    now = int(time.time())
    with engine.begin() as conn:
        claimed = conn.execute(
            update(codes_table)
            .where(
                codes_table.c.code_digest == digest,
                codes_table.c.client_id == client_id,
                codes_table.c.used_at.is_(None),
                codes_table.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(*[codes_table.c[f] for f in AuthorizationCode.__dataclass_fields__])
        ).first()
        if claimed is not None:
            return Redemption(AuthorizationCode(**claimed._mapping))
        used = conn.execute(
            select(codes_table.c.family_id).where(
                codes_table.c.code_digest == digest,
                codes_table.c.client_id == client_id,
                codes_table.c.used_at.is_not(None),
            )
        ).first()
    return Redemption(None, replayed_family=None if used is None else used.family_id)


def nonce_seen(engine: Engine, client_id: str, nonce: str) -> bool:
    """Whether this client already used this nonce (a replayed authentication request)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(codes_table.c.code_digest)
            .where(codes_table.c.client_id == client_id, codes_table.c.nonce == nonce)
            .limit(1)
        ).first()
    return row is not None
