"""AES-256-GCM sealing of small secrets, under keys derived (HKDF-SHA256) from a
secret with one `purpose` per use, so that no key serves two: authenticator-app
keys (`accounts/sealing.py`), refresh-token successors (`oauth/refresh_tokens.py`)
and the database key ring's private keys (`keys/database_store.py`).

The sealed form is base64url(nonce || ciphertext); associated data binds a value
to its owner (an account, a kid), so a sealed value moved elsewhere does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


def derive(secret: str | bytes, purpose: bytes) -> bytes:
    """A 256-bit key for `purpose` from a high-entropy `secret` (no work factor)."""
    material = secret.encode("utf-8") if isinstance(secret, str) else secret
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(material)


def seal(key: bytes, value: bytes, associated: bytes | None = None) -> str:
    nonce = os.urandom(NONCE_BYTES)
    return base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, value, associated)).decode()


def unseal(key: bytes, sealed: str, associated: bytes | None = None) -> bytes:
    """The value; `cryptography.exceptions.InvalidTag` for another key, associated
    data or a tampered value, ValueError for what is not base64."""
    raw = base64.urlsafe_b64decode(sealed.encode())
    return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated)
