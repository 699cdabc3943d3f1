"""OAuth clients: registration rules, storage, and authlib's ClientMixin.

Confidential clients get a high-entropy random secret, shown once and stored
as its SHA-256 digest. A password KDF would protect nothing here (the secret
is 256 random bits, not a guessable password) and would cost /token its
performance budget.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from issuer.db import metadata, secret_digest
from issuer.loopback import is_loopback
from issuer.oauth import resources
from issuer.oauth.codes import codes_table
from issuer.oauth.refresh_tokens import refresh_tokens_table

#: The scopes this issuer knows; clients are registered with a subset.
SUPPORTED_SCOPES = ("openid", "profile", "email")
#: Grant types a client may be registered for.
SUPPORTED_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")

CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
# A DNS name or an IP address: nothing that could split a CSP source list or a header.
_HOST = re.compile(r"[A-Za-z0-9.\-]+|[0-9A-Fa-f:.]+")

clients_table = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    # Hex SHA-256 of the secret; NULL for public clients.
    Column("secret_digest", String(64)),
    Column("redirect_uris", Text, nullable=False),
    Column("post_logout_redirect_uris", Text, nullable=False),
    Column("grant_types", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("first_party", Boolean, nullable=False),
    Column("created_at", Integer, nullable=False),
    # JSON list of the audiences (RFC 8707 resources) its access tokens may carry.
    Column("audiences", Text, nullable=False, server_default="[]"),
)


class ClientError(ValueError):
    """A client registration that this issuer refuses, with the reason."""


@dataclass(frozen=True)
class Client(ClientMixin):
    """A registered client, as authlib's grants and endpoints see it."""

    client_id: str
    name: str
    secret_digest: str | None
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    first_party: bool
    created_at: int
    audiences: tuple[str, ...] = ()

    @property
    def is_public(self) -> bool:
        return self.secret_digest is None

    @property
    def client_metadata(self) -> dict[str, object]:
        """The registration metadata authlib's RP-initiated logout reads."""
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris)}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """No default: every authorization request must name its redirect URI."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_digest is None:
            return False
        return hmac.compare_digest(secret_digest(client_secret), self.secret_digest)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def validate_redirect_uri(uri: str) -> str:
    """Absolute, no fragment, and plain http only for loopback hosts."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise ClientError(f"redirect URI {uri!r} is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ClientError(f"redirect URI {uri!r} must be an absolute http(s) URL")
    if "@" in parts.netloc or not _HOST.fullmatch(host):
        raise ClientError(f"redirect URI {uri!r} must name a plain host (no user, no ; or ,)")
    if parts.fragment or uri.endswith("#"):
        raise ClientError(f"redirect URI {uri!r} must not contain a fragment")
    if any(c.isspace() or ord(c) > 0x7E for c in uri):
        raise ClientError(f"redirect URI {uri!r} contains characters that must be encoded")
    if parts.scheme == "http" and not is_loopback(host):
        raise ClientError(f"redirect URI {uri!r} must use https (http only for loopback hosts)")
    return uri


@dataclass(frozen=True)
class Registration:
    """What `clients add` asks for; validated by `register`."""

    name: str
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    public: bool = False
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    scope: str = "openid profile email"
    first_party: bool = False
    client_id: str | None = None
    audiences: tuple[str, ...] = ()


def register(engine: Engine, reg: Registration) -> tuple[Client, str | None]:
    """Store a new client; return it with its secret (None for public clients).

    The secret exists only in this return value: only its digest is stored.
    """
    client, secret = _new_client(reg)
    with engine.begin() as conn:
        if conn.execute(
            select(clients_table.c.client_id).filter_by(client_id=client.client_id)
        ).first():
            raise ClientError(f"client id {client.client_id!r} is already registered")
        conn.execute(insert(clients_table).values(**_row(client)))
    return client, secret


def replace(engine: Engine, reg: Registration) -> tuple[Client, str | None]:
    """Register `reg` in place of whatever holds its client id, in one transaction.

    For a changed registration (new redirect URIs, a lost secret): the former
    client's codes and refresh tokens go with it, so nothing it was issued
    outlives it under the new secret.
    """
    if reg.client_id is None:
        raise ClientError("replacing a client needs its client id")
    client, secret = _new_client(reg)
    with engine.begin() as conn:
        _delete(conn, client.client_id)
        conn.execute(insert(clients_table).values(**_row(client)))
    return client, secret


def remove(engine: Engine, client_id: str) -> bool:
    """Delete a client with its outstanding codes and refresh tokens; False if unknown.

    Access tokens already issued stay valid until they expire (they are
    verified by signature alone). Running issuers notice within their
    `ClientCache` ttl.
    """
    with engine.begin() as conn:
        return _delete(conn, client_id)


def _delete(conn: Connection, client_id: str) -> bool:
    conn.execute(delete(codes_table).where(codes_table.c.client_id == client_id))
    conn.execute(delete(refresh_tokens_table).where(refresh_tokens_table.c.client_id == client_id))
    deleted = conn.execute(delete(clients_table).where(clients_table.c.client_id == client_id))
    return deleted.rowcount > 0


def _new_client(reg: Registration) -> tuple[Client, str | None]:
    """The validated client `reg` describes, with its secret (None if public)."""
    client_id = reg.client_id or secrets.token_urlsafe(16)
    _validate(reg, client_id)
    secret = None if reg.public else secrets.token_urlsafe(32)
    client = Client(
        client_id=client_id,
        name=reg.name.strip(),
        secret_digest=None if secret is None else secret_digest(secret),
        redirect_uris=tuple(dict.fromkeys(reg.redirect_uris)),
        post_logout_redirect_uris=tuple(dict.fromkeys(reg.post_logout_redirect_uris)),
        grant_types=tuple(dict.fromkeys(reg.grant_types)),
        scope=list_to_scope(list(dict.fromkeys(scope_to_list(reg.scope)))),
        first_party=reg.first_party,
        created_at=int(time.time()),
        audiences=tuple(dict.fromkeys(reg.audiences)),
    )
    return client, secret


def _validate(reg: Registration, client_id: str) -> None:
    if not reg.name.strip() or len(reg.name) > 200:
        raise ClientError("name must be 1 to 200 characters")
    if not CLIENT_ID_PATTERN.match(client_id):
        raise ClientError("client id must be 3 to 64 characters of A-Z a-z 0-9 . _ -")
    unknown = set(reg.grant_types) - set(SUPPORTED_GRANT_TYPES)
    if unknown or not reg.grant_types:
        raise ClientError(
            f"grant types must be among {', '.join(SUPPORTED_GRANT_TYPES)}"
            + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
        )
    unknown = set(scope_to_list(reg.scope) or ()) - set(SUPPORTED_SCOPES)
    if unknown:
        raise ClientError(
            f"unknown scope(s) {', '.join(sorted(unknown))}; known: {' '.join(SUPPORTED_SCOPES)}"
        )
    if "authorization_code" in reg.grant_types and not reg.redirect_uris:
        raise ClientError("an authorization_code client needs at least one --redirect-uri")
    if "refresh_token" in reg.grant_types and "authorization_code" not in reg.grant_types:
        raise ClientError("refresh_token is only issued together with authorization_code")
    if reg.public and "client_credentials" in reg.grant_types:
        raise ClientError("client_credentials needs a confidential client (it has no user)")
    for uri in (*reg.redirect_uris, *reg.post_logout_redirect_uris):
        validate_redirect_uri(uri)
    validate_audiences(reg.audiences)


def validate_audiences(audiences: Iterable[str]) -> None:
    for audience in audiences:
        try:
            resources.check_uri(audience)
        except ValueError as error:
            raise ClientError(f"audience: {error}") from None


def _row(client: Client) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "secret_digest": client.secret_digest,
        "redirect_uris": json.dumps(client.redirect_uris),
        "post_logout_redirect_uris": json.dumps(client.post_logout_redirect_uris),
        "grant_types": json.dumps(client.grant_types),
        "scope": client.scope,
        "first_party": client.first_party,
        "created_at": client.created_at,
        "audiences": json.dumps(client.audiences),
    }


def _client(row: object) -> Client:
    m = row._mapping  # type: ignore[attr-defined]
    return Client(
        client_id=m["client_id"],
        name=m["name"],
        secret_digest=m["secret_digest"],
        redirect_uris=tuple(json.loads(m["redirect_uris"])),
        post_logout_redirect_uris=tuple(json.loads(m["post_logout_redirect_uris"])),
        grant_types=tuple(json.loads(m["grant_types"])),
        scope=m["scope"],
        first_party=bool(m["first_party"]),
        created_at=m["created_at"],
        audiences=tuple(json.loads(m["audiences"])),
    )


def set_audiences(engine: Engine, client_id: str, audiences: Iterable[str]) -> Client | None:
    """Replace what a client may obtain, keeping its secret; None if unknown.

    Refresh tokens already issued keep their grant, but `/token` issues only
    audiences the client is still allowed: a removed one ends at the next refresh.
    """
    wanted = tuple(dict.fromkeys(audiences))
    validate_audiences(wanted)
    with engine.begin() as conn:
        changed = conn.execute(
            update(clients_table)
            .where(clients_table.c.client_id == client_id)
            .values(audiences=json.dumps(wanted))
        )
    return load(engine, client_id) if changed.rowcount else None


def set_redirect_uris(
    engine: Engine,
    client_id: str,
    redirect_uris: Iterable[str],
    post_logout_redirect_uris: Iterable[str],
) -> Client | None:
    """Replace where a client's users are sent back, keeping its secret and its
    refresh tokens (they are bound to the client, not to a URI); None if unknown.

    Outstanding codes were issued for a URI and are checked against it at /token,
    so none of them survives a move either way.
    """
    redirects = tuple(dict.fromkeys(redirect_uris))
    after_logout = tuple(dict.fromkeys(post_logout_redirect_uris))
    for uri in (*redirects, *after_logout):
        validate_redirect_uri(uri)
    with engine.begin() as conn:
        changed = conn.execute(
            update(clients_table)
            .where(clients_table.c.client_id == client_id)
            .values(
                redirect_uris=json.dumps(redirects),
                post_logout_redirect_uris=json.dumps(after_logout),
            )
        )
    return load(engine, client_id) if changed.rowcount else None


def load(engine: Engine, client_id: str) -> Client | None:
    if not CLIENT_ID_PATTERN.match(client_id):
        return None
    with engine.connect() as conn:
        row = conn.execute(select(clients_table).filter_by(client_id=client_id)).first()
    return None if row is None else _client(row)


def all_clients(engine: Engine) -> Iterable[Client]:
    with engine.connect() as conn:
        rows = conn.execute(select(clients_table).order_by(clients_table.c.created_at)).all()
    return [_client(r) for r in rows]


class ClientCache:
    """Registered clients kept in memory for `ttl` seconds.

    /token looks its client up on every request; the registry changes only
    through the CLI, so a registration shows up (and a change takes effect)
    within `ttl` seconds without a database read per token. Unknown ids are
    not cached: random ids must not grow the cache.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 1024) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Client]] = {}

    def get(self, engine: Engine, client_id: str) -> Client | None:
        now = time.monotonic()
        entry = self._entries.get(client_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        client = load(engine, client_id)
        if client is not None:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[client_id] = (now + self.ttl, client)
        return client
