"""Token checks with an independent JOSE library (joserfc), as a relying party does."""

from __future__ import annotations

import json

from joserfc import jwt
from joserfc.jwk import KeySet


def verify_with_jwks(token: str, jwks_body: bytes) -> jwt.Token:
    """Verify an ES256 token given only a published JWKS document."""
    return jwt.decode(token, KeySet.import_key_set(json.loads(jwks_body)), algorithms=["ES256"])
