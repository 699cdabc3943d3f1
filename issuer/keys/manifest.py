"""The ring's state: one record per key, the invariants, and the lifecycle transitions.

A key moves `next` (published, not signing) -> `active` (published, signing) ->
`retired` (published until every token it signed has expired) -> pruned (gone);
`revoked` takes a key out of the JWKS at once. The manifest is immutable: each
transition returns a new one, which the store writes with a single atomic
rename, so a crash leaves either the old or the new state on disk, never a mix.
Only public keys live here; private keys are separate files (see `store`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from issuer.keys.errors import ManifestError, RotationTooEarly, UnknownKey
from issuer.keys.jwk import public_key_from_jwk, thumbprint

FORMAT_VERSION = 1
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


PUBLISHED_STATES = (KeyState.ACTIVE, KeyState.NEXT, KeyState.RETIRED)  # JWKS order
# The states whose private key is kept on disk; retired and revoked keys never sign again.
SIGNING_STATES = frozenset({KeyState.NEXT, KeyState.ACTIVE})

# Which timestamp each state requires (besides created_at and published_at).
_STATE_TIMES = {
    KeyState.NEXT: (),
    KeyState.ACTIVE: ("activated_at",),
    KeyState.RETIRED: ("activated_at", "retired_at"),
    KeyState.REVOKED: ("revoked_at",),
}
_TIMES = ("created_at", "published_at", "activated_at", "retired_at", "revoked_at")


@dataclass(frozen=True)
class KeyRecord:
    """One key as the manifest knows it: public JWK, state and timestamps (epoch seconds)."""

    kid: str
    state: KeyState
    jwk: dict[str, str] = field(compare=False)
    created_at: int
    published_at: int
    activated_at: int | None = None
    retired_at: int | None = None
    revoked_at: int | None = None

    @property
    def published(self) -> bool:
        return self.state in PUBLISHED_STATES

    def rotation_safe_at(self, min_published: int) -> int:
        """When this `next` key has been in verifiers' JWKS long enough to start signing."""
        return self.published_at + min_published

    def prunable_at(self, max_token_lifetime: int, leeway: int) -> int | None:
        """When the last token this key signed has expired everywhere; None unless retired."""
        if self.retired_at is None or self.state is not KeyState.RETIRED:
            return None
        return self.retired_at + max_token_lifetime + leeway

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"kid": self.kid, "state": str(self.state), "jwk": self.jwk}
        data.update({name: getattr(self, name) for name in _TIMES})
        return data

    @classmethod
    def new(cls, jwk: dict[str, str], state: KeyState, now: int) -> KeyRecord:
        activated = now if state is KeyState.ACTIVE else None
        return cls(thumbprint(jwk), state, jwk, now, now, activated_at=activated)


@dataclass(frozen=True)
class Manifest:
    """Every key of the ring. Invariant: exactly one `active` and exactly one `next`."""

    generation: int
    keys: tuple[KeyRecord, ...]

    @property
    def active(self) -> KeyRecord:
        return self._only(KeyState.ACTIVE)

    @property
    def next(self) -> KeyRecord:
        return self._only(KeyState.NEXT)

    def published(self) -> list[KeyRecord]:
        """Keys for the JWKS: active, next, then retired ones, newest retirement first."""
        order = {state: rank for rank, state in enumerate(PUBLISHED_STATES)}
        keys = [k for k in self.keys if k.published]
        return sorted(keys, key=lambda k: (order[k.state], -(k.retired_at or 0)))

    def get(self, kid: str) -> KeyRecord:
        for key in self.keys:
            if key.kid == kid:
                return key
        raise UnknownKey(f"no key with kid {kid!r} in the ring (see `keys list`)")

    def signing_kids(self) -> set[str]:
        """Kids whose private-key file must exist; any other key file is an orphan."""
        return {k.kid for k in self.keys if k.state in SIGNING_STATES}

    # Transitions. `now` is epoch seconds; new keys come in as public JWKs.

    @classmethod
    def initial(cls, active_jwk: dict[str, str], next_jwk: dict[str, str], now: int) -> Manifest:
        keys = (
            KeyRecord.new(active_jwk, KeyState.ACTIVE, now),
            KeyRecord.new(next_jwk, KeyState.NEXT, now),
        )
        return cls(1, keys).checked()

    def rotate(
        self, new_next_jwk: dict[str, str], now: int, *, min_published: int, force: bool
    ) -> Manifest:
        """Retire active, promote next, publish a new next."""
        promoted, retired = self.next, self.active
        safe_at = promoted.rotation_safe_at(min_published)
        if now < safe_at and not force:
            raise RotationTooEarly(
                f"key {promoted.kid} has been published for {now - promoted.published_at} s; "
                f"verifiers may not have it cached until {min_published} s have passed "
                f"(in {safe_at - now} s). Wait, or use --force to accept rejected tokens."
            )
        changed = {
            promoted.kid: replace(promoted, state=KeyState.ACTIVE, activated_at=now),
            retired.kid: replace(retired, state=KeyState.RETIRED, retired_at=now),
        }
        return self._with(changed, KeyRecord.new(new_next_jwk, KeyState.NEXT, now))

    def prune(
        self, now: int, *, max_token_lifetime: int, leeway: int
    ) -> tuple[Manifest, list[str]]:
        """Drop retired keys whose tokens have all expired, and revoked keys."""
        gone = [
            k.kid
            for k in self.keys
            if k.state is KeyState.REVOKED
            or (k.state is KeyState.RETIRED and now >= k.prunable_at(max_token_lifetime, leeway))
        ]
        kept = tuple(k for k in self.keys if k.kid not in gone)
        return replace(self, generation=self.generation + 1, keys=kept).checked(), gone

    def revoke(self, kid: str, new_next_jwk: dict[str, str], now: int) -> Manifest:
        """Unpublish `kid` at once. Revoking active promotes next without waiting; revoking
        active or next publishes `new_next_jwk` as the new next (unused for a retired key)."""
        key = self.get(kid)
        if key.state is KeyState.REVOKED:
            raise UnknownKey(f"key {kid} is already revoked")
        changed = {kid: replace(key, state=KeyState.REVOKED, revoked_at=now)}
        if key.state is KeyState.RETIRED:
            return self._with(changed)
        if key.state is KeyState.ACTIVE:
            promoted = self.next
            changed[promoted.kid] = replace(promoted, state=KeyState.ACTIVE, activated_at=now)
        return self._with(changed, KeyRecord.new(new_next_jwk, KeyState.NEXT, now))

    def _with(self, changed: dict[str, KeyRecord], added: KeyRecord | None = None) -> Manifest:
        keys = tuple(changed.get(k.kid, k) for k in self.keys)
        if added is not None:
            if any(k.kid == added.kid for k in keys):
                raise ManifestError(f"new key {added.kid} collides with an existing kid")
            keys = (*keys, added)
        return replace(self, generation=self.generation + 1, keys=keys).checked()

    def _only(self, state: KeyState) -> KeyRecord:
        (key,) = (k for k in self.keys if k.state is state)
        return key

    # Serialisation and invariants.

    def checked(self) -> Manifest:
        """Return self if every invariant holds, else raise ManifestError saying which."""
        kids = [k.kid for k in self.keys]
        if len(set(kids)) != len(kids):
            raise ManifestError("two keys share a kid")
        for state in (KeyState.ACTIVE, KeyState.NEXT):
            count = sum(k.state is state for k in self.keys)
            if count != 1:
                raise ManifestError(f"the ring must have exactly one {state} key, found {count}")
        for key in self.keys:
            missing = [name for name in _STATE_TIMES[key.state] if getattr(key, name) is None]
            if missing:
                raise ManifestError(f"{key.state} key {key.kid} lacks {', '.join(missing)}")
        return self

    def dumps(self) -> bytes:
        data = {
            "version": FORMAT_VERSION,
            "generation": self.generation,
            "keys": [k.to_json() for k in self.keys],
        }
        return json.dumps(data, indent=2).encode("utf-8") + b"\n"

    @classmethod
    def loads(cls, raw: bytes) -> Manifest:
        """Parse and validate; any defect is a ManifestError naming it, never a traceback."""
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"the manifest is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ManifestError(f"the manifest is not a version {FORMAT_VERSION} key-ring manifest")
        generation, entries = data.get("generation"), data.get("keys")
        if not _is_int(generation) or not isinstance(entries, list):
            raise ManifestError("the manifest needs an integer 'generation' and a 'keys' list")
        return cls(
            generation, tuple(_record(entry, n) for n, entry in enumerate(entries))
        ).checked()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _record(entry: object, index: int) -> KeyRecord:
    where = f"key #{index + 1}"
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} is not an object")
    kid, jwk = entry.get("kid"), entry.get("jwk")
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise ManifestError(f"{where} has no valid kid")
    where = f"key {kid}"
    try:
        state = KeyState(entry.get("state"))
    except ValueError:
        raise ManifestError(f"{where} has an unknown state {entry.get('state')!r}") from None
    try:
        if not isinstance(jwk, dict) or set(jwk) != {"crv", "kty", "x", "y"}:
            raise ValueError("expected exactly crv, kty, x, y")
        public_key_from_jwk(jwk)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{where} has an invalid public key ({exc})") from None
    if thumbprint(jwk) != kid:
        raise ManifestError(f"{where} does not match its public key's thumbprint")
    times = {}
    for name in _TIMES:
        value = entry.get(name)
        if value is not None and not (_is_int(value) and value >= 0):
            raise ManifestError(f"{where} has an invalid {name} {value!r}")
        times[name] = value
    if times["created_at"] is None or times["published_at"] is None:
        raise ManifestError(f"{where} lacks created_at or published_at")
    return KeyRecord(kid, state, jwk, **times)
