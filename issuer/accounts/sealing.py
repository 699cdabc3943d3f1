"""Sealing small account secrets (authenticator-app keys) at rest.

AES-256-GCM under a key derived (HKDF-SHA256) from the issuer's secret key, with
the row's owner as associated data: a copy of the database alone mints no codes,
and a sealed secret moved onto another account does not open. When the secret key
changes, the former one in SECRET_KEY_FALLBACKS still opens what it sealed.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

_INFO = b"issuer account secrets v1"


class SealError(Exception):
    """A sealed value no key of ours opens (corrupt, or sealed under a lost key)."""


def _key(secret_key: str | bytes) -> AESGCM:
    material = secret_key.encode() if isinstance(secret_key, str) else secret_key
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return AESGCM(hkdf.derive(material))


def seal(value: str, owner: str) -> str:
    nonce = os.urandom(12)
    sealed = _key(current_app.secret_key).encrypt(nonce, value.encode(), owner.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(sealed: str, owner: str) -> str:
    raw = base64.urlsafe_b64decode(sealed.encode())
    keys = (current_app.secret_key, *(current_app.config.get("SECRET_KEY_FALLBACKS") or ()))
    for secret_key in keys:
        try:
            return _key(secret_key).decrypt(raw[:12], raw[12:], owner.encode()).decode()
        except InvalidTag:
            continue
    raise SealError("No key opens this secret.")
