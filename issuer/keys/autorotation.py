"""Rotation and pruning on a schedule (`ISSUER_ROTATION_PERIOD`), as Dex rotates.

Every minute one issuer process of the fleet (the scheduler's claim decides which)
looks at the ring: once the active key has signed for a period and the next key
has been published for `ISSUER_ROTATION_MIN_PUBLISHED` (publish before sign: every
verifier's JWKS cache then holds it), it rotates; whatever retired key can no
longer have live tokens is pruned. Nothing is forced: a ring that is not ready
waits for the next check, and the operator's own `keys rotate` stays available.
"""

from __future__ import annotations

from flask import Flask

from issuer.config import Config
from issuer.keys.manifest import Manifest
from issuer.keys.ring import KeyRing
from issuer.schedule import Job

#: How often the fleet looks at the ring, in seconds.
CHECK_PERIOD = 60


def next_rotation(manifest: Manifest, config: Config) -> int | None:
    """When the scheduler will rotate (epoch seconds); None when it does not."""
    if not config.rotation_period:
        return None
    due = (manifest.active.activated_at or 0) + config.rotation_period
    return max(due, manifest.next.rotation_safe_at(config.rotation_min_published))


def check(ring: KeyRing, config: Config) -> None:
    """Rotate if due and allowed, then prune."""
    when = next_rotation(ring.manifest(), config)
    if when is not None and when <= ring.clock():
        ring.rotate(min_published=config.rotation_min_published)
    ring.prune(max_token_lifetime=config.access_token_ttl, leeway=config.leeway)


def jobs(app: Flask) -> list[Job]:
    config: Config = app.config["ISSUER"]
    if not config.rotation_period:
        return []
    ring: KeyRing = app.extensions["keyring"]
    return [Job("keys", CHECK_PERIOD, lambda: check(ring, config))]
