"""Sealing small account secrets (authenticator-app keys) at rest.

AES-256-GCM under a key derived (HKDF-SHA256) from the issuer's secret key, with
the row's owner as associated data: a copy of the database alone mints no codes,
and a sealed secret moved onto another account does not open. When the secret key
changes, the former one in SECRET_KEY_FALLBACKS still opens what it sealed.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from flask import current_app

from issuer import aead

_INFO = b"issuer account secrets v1"


class SealError(Exception):
    """A sealed value no key of ours opens (corrupt, or sealed under a lost key)."""


def seal(value: str, owner: str) -> str:
    return aead.seal(aead.derive(current_app.secret_key, _INFO), value.encode(), owner.encode())


def unseal(sealed: str, owner: str) -> str:
    keys = (current_app.secret_key, *(current_app.config.get("SECRET_KEY_FALLBACKS") or ()))
    for secret_key in keys:
        try:
            return aead.unseal(aead.derive(secret_key, _INFO), sealed, owner.encode()).decode()
        except InvalidTag:
            continue
    raise SealError("No key opens this secret.")
