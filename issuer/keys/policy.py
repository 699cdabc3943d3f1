"""When a `next` key may start signing: only once every verifier's cache holds it.

Neon's proxy refreshes a JWKS in the background after 5 minutes and blocking
after an hour, and our own `Cache-Control: max-age` may say more: a key
published for less than the longest of these may sign tokens that some verifier
refuses until it refetches. The issuer refuses to start with settings that
allow it, and `keys rotate` checks again (tests and operators change settings).
"""

from __future__ import annotations

from issuer.keys.errors import RotationPolicyError

#: Neon's proxy refetches a cached JWKS, blocking, once it is an hour old.
NEON_JWKS_CACHE_MAX_AGE = 3600


def check_rotation_policy(min_published: int, jwks_max_age: int) -> None:
    """Raise RotationPolicyError unless `min_published` outlasts every JWKS cache."""
    longest_cache = max(jwks_max_age, NEON_JWKS_CACHE_MAX_AGE)
    if min_published <= longest_cache:
        raise RotationPolicyError(
            f"ISSUER_ROTATION_MIN_PUBLISHED ({min_published} s) must exceed "
            f"the longest JWKS cache lifetime ({longest_cache} s: ISSUER_JWKS_MAX_AGE and "
            f"Neon's {NEON_JWKS_CACHE_MAX_AGE} s blocking refresh)"
        )
