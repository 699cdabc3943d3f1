"""The issuer's key ring: the one component that owns the signing keys' lifecycle.

Everything else asks it: `signing_key()` for the key that signs now, `jwks()`
for the published set. Both are hot paths: they `stat` the manifest at most
once per `refresh_interval` (1 s) and re-read the ring only when another
process (the CLI, say) replaced it, so every gunicorn worker follows a rotation
within a second, without a restart. Mutations (`init`, `rotate`, `prune`,
`revoke`) run under an inter-process lock, write atomically, and are audited;
the lifecycle rules themselves live in `issuer.keys.manifest`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from issuer.audit import audit
from issuer.keys.errors import (
    KeyFileError,
    KeyRingError,
    RingExists,
)
from issuer.keys.jwk import b64url, public_jwk, thumbprint
from issuer.keys.manifest import KeyRecord, KeyState, Manifest
from issuer.keys.store import KeyStore, Stamp
from private_files import write_atomically

log = logging.getLogger(__name__)

# How long a process may serve its cached ring before it stats the manifest again.
REFRESH_INTERVAL = 1.0

# This process's pid, renewed in a forked child: the hot path compares it instead of
# asking the kernel on every call (os.getpid is a system call, half the path's cost).
# A fork in C that skips Python's at-fork hooks (uWSGI without
# --py-call-osafterfork) is caught by the slow path, once per refresh interval.
_pid = os.getpid()


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)


@dataclass(frozen=True)
class SigningKey:
    """The active key: its kid and private key, with JWS header segments cached per `typ`."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey
    _headers: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def header_segment(self, typ: str) -> bytes:
        """The base64url JWS protected header, computed once per key and typ."""
        segment = self._headers.get(typ)
        if segment is None:
            header = {"alg": "ES256", "kid": self.kid, "typ": typ}
            segment = b64url(json.dumps(header, separators=(",", ":")).encode()).encode("ascii")
            self._headers[typ] = segment
        return segment


@dataclass(frozen=True)
class Jwks:
    """The published key set, serialised once per ring change, with its strong ETag."""

    body: bytes
    etag: str
    kids: tuple[str, ...]


@dataclass(frozen=True)
class _Snapshot:
    stamp: Stamp | None
    manifest: Manifest
    signing_key: SigningKey
    jwks: Jwks


class KeyRing:
    """ES256 keys in `directory`.

    `clock` returns epoch seconds (tests inject their own). `refresh_interval` is
    how stale this process's view of a change made by another process may get
    (its own changes are seen at once); 0 checks the manifest on every call. A store
    that pushes changes (`watch`: PostgreSQL's NOTIFY) makes them visible at once,
    but the interval still holds when pushes stop arriving without an error (a
    pooler that drops LISTEN, a connection a middlebox forgot): they only shorten it.
    """

    def __init__(
        self,
        directory: Path,
        passphrase: str | None = None,
        clock: Callable[[], float] = time.time,
        refresh_interval: float = REFRESH_INTERVAL,
        static_jwks_dir: Path | None = None,
        store: Any = None,
    ) -> None:
        # The files in `directory`, unless another store is given (the database's).
        self.store = store if store is not None else KeyStore(Path(directory), passphrase)
        self.static_jwks = None if static_jwks_dir is None else Path(static_jwks_dir) / "jwks.json"
        self.clock = clock
        self.refresh_interval = refresh_interval
        self._snapshot: _Snapshot | None = None
        self._fresh_until = 0.0
        self._failed_stamp: Stamp | None = None
        self._reload_lock = threading.Lock()
        # Pushed changes: a counter, so a check that raced a push cannot extend freshness.
        self._fresh_lock = threading.Lock()
        self._changes = 0
        self._watcher: Any = None
        self._watcher_pid = 0

    # Read side.

    def signing_key(self) -> SigningKey:
        return self._current().signing_key

    def jwks(self) -> Jwks:
        return self._current().jwks

    def manifest(self) -> Manifest:
        """The ring as it is on disk now (not the cached snapshot), for `keys list`."""
        return Manifest.loads(self.store.read_manifest())

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        now = time.monotonic()
        # A forked child starts over: its parent's freshness is not its own.
        if snapshot is not None and now < self._fresh_until and self._watcher_pid == _pid:
            return snapshot
        changes = self._watch()
        stamp = self.store.stamp()
        if snapshot is None or stamp not in (snapshot.stamp, self._failed_stamp):
            with self._reload_lock:
                snapshot = self._snapshot
                if snapshot is None or stamp not in (snapshot.stamp, self._failed_stamp):
                    snapshot = self._reload(snapshot, stamp)
        self._stay_fresh(now, changes)
        return snapshot

    def _watch(self) -> int:
        """Start (once per process: not inherited by a fork) listening for pushed
        changes; the count of changes pushed so far."""
        _renew_pid()
        if self._watcher_pid != _pid:
            self._watcher_pid = _pid
            self._watcher = self.store.watch(self._changed)
        return self._changes

    def close(self) -> None:
        """Stop listening for pushed changes (a process that ends needs not)."""
        if self._watcher is not None:
            self._watcher.stop()

    def _changed(self) -> None:
        with self._fresh_lock:
            self._changes += 1
            self._fresh_until = 0.0

    def _stay_fresh(self, now: float, changes: int) -> None:
        with self._fresh_lock:
            if self._changes == changes:  # nothing pushed since the stamp was read
                self._fresh_until = now + self.refresh_interval

    def _reload(self, previous: _Snapshot | None, stamp: Stamp | None) -> _Snapshot:
        try:
            self._snapshot = self._load(stamp)
            self._publish_static(self._snapshot.jwks.body)
        except KeyRingError as exc:
            # A broken edit must not stop a running issuer: keep signing with the
            # last good ring, and say so once per broken manifest.
            if previous is None:
                raise
            self._failed_stamp = stamp
            log.error(
                "key ring reload failed, still using generation %s: %s",
                previous.manifest.generation,
                exc,
            )
            return previous
        return self._snapshot

    def _load(self, stamp: Stamp | None) -> _Snapshot:
        """Read the ring; `stamp` was taken before reading, so a replace in between only
        causes one more reload on the next call."""
        manifest = Manifest.loads(self.store.read_manifest())
        active = manifest.active
        private_key = self.store.load_private_key(active.kid)
        self._check_key_matches(active, private_key)
        self._check_file_present(manifest.next)
        signing_key = SigningKey(active.kid, private_key)
        return _Snapshot(stamp, manifest, signing_key, jwks_document(manifest))

    def _check_key_matches(self, record: KeyRecord, key: ec.EllipticCurvePrivateKey) -> None:
        if public_jwk(key.public_key()) != record.jwk:
            raise KeyFileError(f"the key file of {record.kid} holds a different key")

    def _check_file_present(self, record: KeyRecord) -> None:
        if not self.store.has_private_key(record.kid):
            raise KeyFileError(f"the private key of {record.kid} is missing from {self.store}")

    # Mutations: lock, re-read from disk, transition, write key files, manifest, clean up.

    def init(self) -> Manifest:
        """Create the ring: an active key and a published next key."""
        with self.store.locked(create=True):
            if self.store.exists():
                raise RingExists(f"a key ring already exists in {self.store}")
            active, following = self._new_key(), self._new_key()
            manifest = Manifest.initial(
                public_jwk(active.public_key()), public_jwk(following.public_key()), self._now()
            )
            self._commit(manifest, active, following)
        audit("keys.init", active=manifest.active.kid, next=manifest.next.kid)
        return manifest

    def rotate(self, *, min_published: int, force: bool = False) -> tuple[KeyRecord, Manifest]:
        """Promote next to active, retire active, publish a new next; return the retired
        key and the new ring.

        Refused (RotationTooEarly) while next has been published for less than
        `min_published` seconds, unless `force`.
        """
        with self.store.locked():
            before = self._read_for_update()
            promoted = self.store.load_private_key(before.next.kid)
            self._check_key_matches(before.next, promoted)
            fresh = self._new_key()
            after = before.rotate(
                public_jwk(fresh.public_key()),
                self._now(),
                min_published=min_published,
                force=force,
            )
            self._commit(after, fresh)
        audit(
            "keys.rotate",
            retired=before.active.kid,
            active=after.active.kid,
            next=after.next.kid,
            forced=force,
            generation=after.generation,
        )
        return after.get(before.active.kid), after

    def prune(self, *, max_token_lifetime: int, leeway: int) -> list[str]:
        """Drop retired keys whose tokens have all expired, and revoked keys; return their kids."""
        with self.store.locked():
            before = self._read_for_update()
            after, gone = before.prune(
                self._now(), max_token_lifetime=max_token_lifetime, leeway=leeway
            )
            if gone:
                self._commit(after)
        if gone:
            audit("keys.prune", kids=gone, generation=after.generation)
        return gone

    def revoke(self, kid: str) -> Manifest:
        """Unpublish `kid` at once. Revoking the active key promotes next without waiting;
        revoking active or next creates a new next."""
        with self.store.locked():
            before = self._read_for_update()
            was = before.get(kid).state
            if was is KeyState.ACTIVE:
                self._check_key_matches(before.next, self.store.load_private_key(before.next.kid))
            fresh = self._new_key()
            after = before.revoke(kid, public_jwk(fresh.public_key()), self._now())
            created = after.next.kid != before.next.kid
            self._commit(after, *([fresh] if created else []))
        audit(
            "keys.revoke",
            kid=kid,
            was=str(was),
            active=after.active.kid,
            next=after.next.kid,
            generation=after.generation,
        )
        return after

    def _read_for_update(self) -> Manifest:
        manifest = Manifest.loads(self.store.read_manifest())
        self._check_file_present(manifest.active)
        return manifest

    def _commit(self, manifest: Manifest, *new_keys: ec.EllipticCurvePrivateKey) -> None:
        """Key files first, then the manifest (the commit point), then clean-up."""
        for key in new_keys:
            self.store.write_private_key(thumbprint(public_jwk(key.public_key())), key)
        self.store.write_manifest(manifest.dumps())
        self.store.remove_unreferenced(manifest.signing_kids())
        self._snapshot, self._fresh_until = None, 0.0
        self._publish_static(jwks_document(manifest).body)

    def _publish_static(self, body: bytes) -> None:
        """Keep the static copy of the JWKS (ISSUER_JWKS_STATIC_DIR) equal to the
        published set: written by whichever process changes the ring, and by every
        issuer that loads a ring the copy does not match (a lost or stale file).

        Verifiers such as Neon's proxy drop a provider's keys when a refresh fails:
        a copy any static host or CDN can serve keeps the JWKS URL up while the
        issuer is down. Written atomically, world-readable (it is public). A
        failure is logged, not raised: the ring itself has changed, and signing
        must go on; the next reload tries again."""
        if self.static_jwks is None:
            return
        try:
            if self.static_jwks.is_file() and self.static_jwks.read_bytes() == body:
                return
            self.static_jwks.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.static_jwks, body, temp_prefix=".jwks.json.", mode=0o644)
        except OSError as error:
            log.error("cannot write the static JWKS %s: %s", self.static_jwks, error)

    def _new_key(self) -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def _now(self) -> int:
        return int(self.clock())


def jwks_document(manifest: Manifest) -> Jwks:
    """The published keys as served (public members, alg, use), with a strong ETag."""
    keys = [{**k.jwk, "kid": k.kid, "alg": "ES256", "use": "sig"} for k in manifest.published()]
    body = json.dumps({"keys": keys}, separators=(",", ":")).encode("ascii")
    etag = b64url(hashlib.sha256(body).digest()[:16])
    return Jwks(body, f'"{etag}"', tuple(k["kid"] for k in keys))
