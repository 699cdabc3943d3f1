"""The key ring: the signing keys' lifecycle, in one package.

- `ring.KeyRing` owns the lifecycle (what signs now, what is published, the
  mutations) on top of `manifest` (the states and their rules, pure), `store`
  (the files on disk, crash-safe) or `database_store` (the issuer's database,
  sealed under a master key, for a fleet) and `jwk` (encoding, RFC 7638 thumbprints);
- `autorotation`: rotation and pruning by schedule;
- `policy`: how long a key must be published before it signs;
- `jwks`: the `/.well-known/jwks.json` HTTP handler;
- `cli`: `python -m issuer keys …`.

Everything else in the issuer talks to the `KeyRing` only.
"""

from issuer.keys.errors import (
    KeyFileError,
    KeyRingError,
    ManifestError,
    PassphraseError,
    RingBusy,
    RingExists,
    RingNotFound,
    RotationPolicyError,
    RotationTooEarly,
    StorageError,
    UnknownKey,
)
from issuer.keys.manifest import KeyRecord, KeyState, Manifest
from issuer.keys.ring import REFRESH_INTERVAL, Jwks, KeyRing, SigningKey, jwks_document

__all__ = [
    "REFRESH_INTERVAL",
    "Jwks",
    "KeyFileError",
    "KeyRecord",
    "KeyRing",
    "KeyRingError",
    "KeyState",
    "Manifest",
    "ManifestError",
    "PassphraseError",
    "RingBusy",
    "RingExists",
    "RingNotFound",
    "RotationPolicyError",
    "RotationTooEarly",
    "SigningKey",
    "StorageError",
    "UnknownKey",
    "jwks_document",
]
