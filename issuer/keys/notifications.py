"""Key-ring changes pushed by PostgreSQL (LISTEN/NOTIFY), so an issuer of a fleet
learns of a rotation made elsewhere at once, without asking the database per request.

The database store sends `NOTIFY` in the transaction that changes the ring; it is
delivered only if that transaction commits. Each serving process listens on a
connection of its own, in a daemon thread. Notifications are not queued for a
listener that is away, so the ring trusts them only while `listening` is true:
when the connection drops, it goes back to checking the version every second, and
after reconnecting the listener reports a change (one may have been missed).
"""

from __future__ import annotations

import logging
import os
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
        self._pid = os.getpid()
        self._listening = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-ring-listener", daemon=True)
        self._thread.start()

    @property
    def listening(self) -> bool:
        """True while notifications reach this process (never in a forked child,
        which must start a listener of its own)."""
        return self._listening.is_set() and os.getpid() == self._pid

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except Exception as error:  # the thread must outlive any failure
                if self._listening.is_set():
                    log.warning("key ring notifications lost, checking every second: %s", error)
            self._listening.clear()
            self.changed()
            self._stopped.wait(RECONNECT_DELAY)

    def _listen(self) -> None:
        raw = self.engine.raw_connection()
        conn = raw.driver_connection
        raw.detach()  # ours for as long as it lives, never back in the pool
        try:
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
            self._listening.set()
            self.changed()  # whatever happened while nobody listened
            while not self._stopped.is_set():
                for _ in conn.notifies(timeout=1.0):
                    self.changed()
        finally:
            conn.close()
