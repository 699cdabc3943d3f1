"""Audit trail: one JSON line per security-relevant change, on logger "issuer.audit".

Key-ring changes, account and client changes and token-family revocations all go
through `audit()`, so an operator ships a single logger to their log store and
greps one format. Callers pass identifiers (kids, user ids, client ids, a jti),
never secrets: the field names that usually carry one are refused outright.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

logger = logging.getLogger("issuer.audit")

# Field names that would put a secret in the log. Refusing them turns a leak
# into a test failure instead of a line in someone's log store.
FORBIDDEN_FIELDS = frozenset(
    {
        "access_token",
        "client_secret",
        "code",
        "id_token",
        "passphrase",
        "password",
        "refresh_token",
        "secret",
        "token",
    }
)


def audit(event: str, **fields: object) -> None:
    """Log `event` (dotted name such as "keys.rotate") with its fields as one JSON line."""
    leaked = FORBIDDEN_FIELDS.intersection(fields)
    if leaked:
        raise ValueError(f"audit fields must not carry secrets: {', '.join(sorted(leaked))}")
    if "ts" in fields:
        raise ValueError("audit field 'ts' is reserved for the timestamp")
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = json.dumps({"ts": ts, "event": event, **fields}, default=str, separators=(",", ":"))
    logger.info(line)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the record (test runners swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def log_to_stderr() -> None:
    """Print audit lines on stderr (for CLI commands), unless logging is configured already."""
    if logger.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
