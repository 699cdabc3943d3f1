"""A client-side time limit on statements, which SQL sent by the client cannot lift.

The server-side `statement_timeout` is set on every pooled connection, but a
batch can `SET statement_timeout = 0` before a slow statement. One daemon thread
per process keeps the deadlines of running requests and cancels the backend of
any request that outlives its own.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._active: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextmanager
    def deadline(self, seconds: float, on_expiry: Callable[[], None]) -> Iterator[list[bool]]:
        """Run the block; call `on_expiry` if it is still running after `seconds`.

        Yields a one-element list that holds True once the deadline has fired. Leaving
        the block waits for a cancellation in progress and prevents any later one, so
        `on_expiry` never runs after the caller has moved on (to another request).
        """
        fired, done = [False], [False]
        guard = threading.Lock()

        def expire() -> None:
            with guard:
                if not done[0]:
                    fired[0] = True
                    on_expiry()

        ident = next(self._ids)
        with self._wake:
            self._start()
            when = time.monotonic() + seconds
            # Wake the thread only if it would otherwise sleep past this deadline.
            if not self._heap or when < self._heap[0][0]:
                self._wake.notify()
            heapq.heappush(self._heap, (when, ident, expire))
            self._active.add(ident)
        try:
            yield fired
        finally:
            with guard:
                done[0] = True
            with self._wake:
                self._active.discard(ident)

    def _start(self) -> None:
        # Started lazily so that the thread is created in the worker process, not
        # in a gunicorn master that forks afterwards.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] not in self._active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                when, ident, expire = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._active.discard(ident)
            try:
                expire()
            except Exception:
                log.exception("cancelling an overdue statement failed")
