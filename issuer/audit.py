"""Audit trail: one JSON line per security-relevant change, on logger "issuer.audit".

Key-ring changes, account and client changes and token-family revocations all go
through `audit()`, so an operator ships a single logger to their log store and
greps one format. Callers pass identifiers (kids, user ids, client ids, a jti),
never secrets: the field names that usually carry one are refused outright.
"""

from __future__ import annotations

import functools
import logging
import sys
import time

import orjson
from blinker import Namespace

from servicemetrics import request_ids

logger = logging.getLogger("issuer.audit")

#: Sent after every audit line, with keyword arguments `event` and `fields` (the
#: metrics count them; see `issuer.metrics`).
audited = Namespace().signal("audited")

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
    # /token writes one line per token: orjson and a per-second timestamp prefix keep
    # that to about a microsecond (the stdlib's json and datetime took five).
    request_id = request_ids.current()
    if request_id is not None and "request_id" not in fields:
        fields["request_id"] = request_id
    line = orjson.dumps({"ts": _timestamp(), "event": event, **fields}, default=str)
    logger.info(line.decode())
    audited.send(event=event, fields=fields)


def _timestamp() -> str:
    """UTC now as 2026-01-31T12:34:56.789Z."""
    now = time.time()
    second = int(now)
    return f"{_formatted_second(second)}.{int((now - second) * 1000):03d}Z"


@functools.lru_cache(maxsize=1)
def _formatted_second(second: int) -> str:
    """Formatted once per second, not once per line."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


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
