"""Tokens signed over exactly the header and claims a test chose."""

from __future__ import annotations

from typing import Any

from tests.proxy.support import SigningKey, b64, b64json


def signed(key: SigningKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS over exactly this header and these claims (json.dumps: NaN written bare)."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64(key.signature(signing_input.encode()))}"
