"""The key ring in the issuer's database, for issuers on several hosts (PostgreSQL) or
one (SQLite): the same manifest and states as the files, in two tables.

Every mutation of the ring (`KeyRing` holds `locked()` around it) is one database
transaction that first takes the ring's row lock and re-reads the manifest, so two
issuers racing to rotate are serialised by the database and a process killed in
the middle leaves the ring as it was. Readers notice a change by its version, which
the ring checks at most once a second (`REFRESH_INTERVAL`); on PostgreSQL the change
is also pushed to every issuer at commit (`notifications`), which makes it visible
at once (the check stays: a push can go missing without an error).

Private keys are sealed with AES-256-GCM under a master key (`ISSUER_KEYS_MASTER_KEY`),
with the kid as associated data, and the manifest carries an HMAC under a key derived
from it: whoever can write to the database but lacks the master key can neither read
a private key nor publish a key of their own. (Nor is it a defence against putting
back an older manifest with its HMAC: the database is trusted not to roll back.) older master keys in `ISSUER_KEYS_MASTER_KEY_FALLBACKS`
still open what they sealed, so the master key itself can be rotated: set the new
one, keep the old as a fallback, and `keys reseal` (as Hydra's system secrets).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
from collections.abc import Callable, Iterator, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import (
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
    text,
    update,
)
from sqlalchemy.exc import DBAPIError

from issuer import aead
from issuer.db import metadata
from issuer.keys import notifications
from issuer.keys.errors import (
    KeyFileError,
    ManifestError,
    PassphraseError,
    RingBusy,
    RingExists,
    RingNotFound,
    StorageError,
)
from issuer.keys.manifest import Manifest
from issuer.keys.store import KeyStore

key_ring_table = Table(
    "key_ring",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("manifest", Text, nullable=False),
    # HMAC-SHA256 of the manifest under a key derived from the master key: a
    # database writer without it cannot publish a key of their own.
    Column("mac", String(64), nullable=False),
    # Bumped by every change: what readers compare to notice one.
    Column("version", Integer, nullable=False),
)
key_ring_private_keys = Table(
    "key_ring_private_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("sealed", Text, nullable=False),
)

RING_ID = 1
_INFO = b"issuer key ring v1"
_MAC_INFO = b"issuer key ring manifest mac v1"


def master_key(secret: str, purpose: bytes = _INFO) -> bytes:
    """A 256-bit key for `purpose` from a master secret (HKDF-SHA256; the secret must
    be random: Config.check asks for 32 characters at least)."""
    return aead.derive(secret, purpose)


class DatabaseKeyStore:
    """`KeyStore`'s interface over the issuer's database."""

    def __init__(self, engine: Engine, master_secrets: Sequence[str]) -> None:
        if not master_secrets:
            raise PassphraseError("the key ring in the database needs ISSUER_KEYS_MASTER_KEY")
        self.engine = engine
        self._keys = [master_key(secret) for secret in master_secrets]
        self._mac_keys = [master_key(secret, _MAC_INFO) for secret in master_secrets]
        self._held = threading.local()

    def __str__(self) -> str:
        return f"the database {self.engine.url.render_as_string(hide_password=True)}"

    # Reads: inside `locked()` on its transaction, else on a connection of their own.

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        held = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        try:
            with self.engine.connect() as conn:
                yield conn
        except DBAPIError as error:
            raise StorageError(f"cannot read the key ring: {error.orig}") from None

    def stamp(self) -> tuple[int] | None:
        try:
            with self._connection() as conn:
                version = conn.execute(
                    select(key_ring_table.c.version).where(key_ring_table.c.id == RING_ID)
                ).scalar()
        except StorageError:
            return None  # reading the manifest will say why
        return None if version is None else (version,)

    def exists(self) -> bool:
        return self.stamp() is not None

    def read_manifest(self) -> bytes:
        with self._connection() as conn:
            row = conn.execute(
                select(key_ring_table.c.manifest, key_ring_table.c.mac).where(
                    key_ring_table.c.id == RING_ID
                )
            ).first()
        if row is None:
            raise RingNotFound(
                f"no key ring in {self} (create one with `python -m issuer keys init`, "
                "or bring the file ring in with `python -m issuer keys import`)"
            )
        raw = row.manifest.encode("utf-8")
        if not any(hmac.compare_digest(row.mac, _mac(key, raw)) for key in self._mac_keys):
            raise ManifestError(
                f"the key ring in {self} fails its integrity check: it was changed "
                "outside the issuer, or under a master key not configured here"
            )
        return raw

    def has_private_key(self, kid: str) -> bool:
        return self._sealed(kid) is not None

    def load_private_key(self, kid: str) -> ec.EllipticCurvePrivateKey:
        sealed = self._sealed(kid)
        if sealed is None:
            raise KeyFileError(f"the private key of {kid} is missing from {self}")
        pem = self._open(kid, sealed)
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyFileError(f"the stored key of {kid} is not an EC key")
        return key

    def _sealed(self, kid: str) -> str | None:
        with self._connection() as conn:
            return conn.execute(
                select(key_ring_private_keys.c.sealed).where(key_ring_private_keys.c.kid == kid)
            ).scalar()

    # Writes: only inside `locked()`, on its transaction.

    @contextlib.contextmanager
    def locked(self, *, create: bool = False, timeout: float = 30.0) -> Iterator[None]:
        """One transaction holding the ring's row lock (created empty by `init`)."""
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text(f"SET LOCAL lock_timeout = {int(timeout * 1000)}"))
                # Taking the lock: an UPDATE of the row (SQLite: the database's write
                # lock; PostgreSQL: the row's), held until commit.
                found = conn.execute(
                    update(key_ring_table)
                    .where(key_ring_table.c.id == RING_ID)
                    .values(version=key_ring_table.c.version)
                ).rowcount
                if not found and not create:
                    raise RingNotFound(f"no key ring in {self} (create one with `keys init`)")
                self._held.conn = conn
                try:
                    yield
                finally:
                    self._held.conn = None
        except DBAPIError as error:
            if "lock" in str(error.orig).lower():
                raise RingBusy(
                    f"another process has held the key ring for over {timeout:.0f} s"
                ) from None
            raise StorageError(f"cannot change the key ring: {error.orig}") from None

    def _writing(self) -> Connection:
        conn = getattr(self._held, "conn", None)
        assert conn is not None, "writes happen inside locked()"
        return conn

    def write_manifest(self, raw: bytes) -> None:
        conn = self._writing()
        values = {"manifest": raw.decode("utf-8"), "mac": _mac(self._mac_keys[0], raw)}
        changed = conn.execute(
            update(key_ring_table)
            .where(key_ring_table.c.id == RING_ID)
            .values(**values, version=key_ring_table.c.version + 1)
        ).rowcount
        if not changed:
            conn.execute(insert(key_ring_table).values(id=RING_ID, version=1, **values))
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"NOTIFY {notifications.CHANNEL}"))  # sent at commit only

    def watch(self, changed: Callable[[], None]) -> notifications.RingListener | None:
        """Call `changed` when another process changes the ring (PostgreSQL only)."""
        if self.engine.dialect.name != "postgresql":
            return None
        return notifications.RingListener(self.engine, changed)

    def write_private_key(self, kid: str, key: ec.EllipticCurvePrivateKey) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.write_sealed(kid, self._seal(kid, pem))

    def write_sealed(self, kid: str, sealed: str) -> None:
        conn = self._writing()
        conn.execute(delete(key_ring_private_keys).where(key_ring_private_keys.c.kid == kid))
        conn.execute(insert(key_ring_private_keys).values(kid=kid, sealed=sealed))

    def remove_unreferenced(self, kids: set[str]) -> list[str]:
        conn = self._writing()
        t = key_ring_private_keys
        gone = list(conn.execute(select(t.c.kid).where(t.c.kid.not_in(kids))).scalars())
        if gone:
            conn.execute(delete(t).where(t.c.kid.in_(gone)))
        return gone

    def reseal(self) -> int:
        """Seal every private key, and sign the manifest, under the current master key;
        how many keys."""
        with self.locked():
            conn = self._writing()
            rows = conn.execute(select(key_ring_private_keys)).all()
            for row in rows:
                self.write_sealed(row.kid, self._seal(row.kid, self._open(row.kid, row.sealed)))
            self.write_manifest(self.read_manifest())
        return len(rows)

    # Sealing.

    def _seal(self, kid: str, pem: bytes) -> str:
        key = self._keys[0]
        return f"{_key_id(key)}.{aead.seal(key, pem, kid.encode('ascii'))}"

    def _open(self, kid: str, sealed: str) -> bytes:
        tag, _, body = sealed.partition(".")
        for key in self._keys:
            if _key_id(key) != tag:
                continue
            try:
                return aead.unseal(key, body, kid.encode("ascii"))
            except ValueError:
                raise KeyFileError(f"the stored key of {kid} is not a sealed key") from None
            except InvalidTag:
                break
        raise PassphraseError(
            f"no master key opens the private key of {kid}: set the master key it was sealed "
            "with as ISSUER_KEYS_MASTER_KEY or in ISSUER_KEYS_MASTER_KEY_FALLBACKS"
        )


def _mac(key: bytes, manifest: bytes) -> str:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


def _key_id(key: bytes) -> str:
    """Which master key sealed a value (8 hex digits of its digest; not the key)."""
    return hashlib.sha256(b"key id:" + key).hexdigest()[:8]


def import_files(files: KeyStore, database: DatabaseKeyStore) -> list[str]:
    """Bring a file ring into an empty database ring in one transaction, keeping every
    kid and state; the kids imported. The files stay as they were (a backup)."""
    manifest = files.read_manifest()
    kids = sorted(record.kid for record in Manifest.loads(manifest).keys)
    with database.locked(create=True):
        if database.exists():
            raise RingExists(f"a key ring already exists in {database}")
        for kid in kids:
            if files.has_private_key(kid):
                database.write_private_key(kid, files.load_private_key(kid))
        database.write_manifest(manifest)
    return kids
