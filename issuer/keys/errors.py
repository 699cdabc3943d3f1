"""What can go wrong with the key ring, one type per cause.

Every message is written for the operator who will read it on a terminal: it
says what is wrong and, where there is one, what to do about it.
"""

from __future__ import annotations


class KeyRingError(Exception):
    """Base class: the key ring cannot do what was asked; the ring is unchanged."""


class RingNotFound(KeyRingError):
    """No manifest in the keys directory: the ring was never initialised."""


class RingExists(KeyRingError):
    """`init` on a directory that already holds a ring."""


class ManifestError(KeyRingError):
    """The manifest is unreadable, malformed, or breaks a ring invariant."""


class KeyFileError(KeyRingError):
    """A private-key file is missing, unreadable, corrupt, or holds another key."""


class PassphraseError(KeyRingError):
    """The passphrase is wrong, missing, or given for keys stored unencrypted."""


class RotationTooEarly(KeyRingError):
    """The `next` key has not been published long enough for verifiers' JWKS caches."""


class RotationPolicyError(KeyRingError):
    """The settings would let a key sign before every verifier's cache holds it."""


class UnknownKey(KeyRingError):
    """No key with that kid, or not in a state the operation applies to."""


class StorageError(KeyRingError):
    """The keys directory cannot be written (permissions, full disk, not a directory)."""


class RingBusy(KeyRingError):
    """Another process holds the ring's lock for too long."""
