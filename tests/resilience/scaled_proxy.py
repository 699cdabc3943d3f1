"""`python -m tests.resilience.scaled_proxy`: `python -m proxy` on a faster clock.

The proxy keeps Neon's cache rules (background JWKS refresh after 5 min,
blocking after 1 h, unknown-kid refetch at most every 30 s, validated tokens
remembered up to 5 min, 30 s leeway). A test cannot wait hours, so this entry
point divides those five durations by RESILIENCE_TIME_SCALE before serving:
the same rules, in the same proportions, on a compressed clock. Nothing else
changes: the real CLI, real gunicorn, real JWKS fetches over HTTP.
"""

from __future__ import annotations

import os
import sys

import proxy.jwks
import proxy.jwt
from proxy.__main__ import main

# The original durations, so a reader of a test's bounds can see where they come from.
NEON_TIMINGS = {
    (proxy.jwks, "AUTO_RENEW"): proxy.jwks.AUTO_RENEW,
    (proxy.jwks, "MAX_RENEW"): proxy.jwks.MAX_RENEW,
    (proxy.jwks, "MIN_RENEW"): proxy.jwks.MIN_RENEW,
    (proxy.jwt, "CACHE_TTL"): proxy.jwt.CACHE_TTL,
    (proxy.jwt, "LEEWAY"): proxy.jwt.LEEWAY,
}


def compress(scale: float) -> None:
    """Divide every cache and leeway duration by `scale` (before gunicorn forks)."""
    for (module, name), seconds in NEON_TIMINGS.items():
        setattr(module, name, seconds / scale)


if __name__ == "__main__":
    compress(float(os.environ["RESILIENCE_TIME_SCALE"]))
    sys.exit(main())
