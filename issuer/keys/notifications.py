"""Key-ring changes pushed by PostgreSQL (LISTEN/NOTIFY), so an issuer of a fleet
learns of a rotation made elsewhere at once rather than at its next version check.

The database store sends `NOTIFY` in the transaction that changes the ring; it is
delivered only if that transaction commits. Each serving process listens on a
connection of its own, in a daemon thread. A push only makes a change visible
sooner: the ring still checks the version every second, because a channel can go
quiet without an error (a transaction-mode pooler that drops LISTEN, a connection a
middlebox forgot). Notifications are not queued for a listener that is away, so
after reconnecting it reports a change (one may have been missed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

log = logging.getLogger(__name__)

CHANNEL = "issuer_key_ring"
#: Seconds between attempts to listen again after the connection dropped.
RECONNECT_DELAY = 1.0


class RingListener:
    """Calls `changed()` on every committed change of the ring, and on every (re)connect."""

    def __init__(self, engine: Engine, changed: Callable[[], None]) -> None:
        self.engine = engine
        self.changed = changed
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-ring-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except Exception as error:  # the thread must outlive any failure
                log.warning("key ring notifications lost, listening again: %s", error)
            self.changed()
            self._stopped.wait(RECONNECT_DELAY)

    def _listen(self) -> None:
        raw = self.engine.raw_connection()
        conn = raw.driver_connection
        raw.detach()  # ours for as long as it lives, never back in the pool
        try:
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
            self.changed()  # whatever happened while nobody listened
            while not self._stopped.is_set():
                for _ in conn.notifies(timeout=1.0):
                    self.changed()
        finally:
            conn.close()
