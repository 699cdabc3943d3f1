"""Jobs on a timer, run once per period across every issuer on one database.

Every issuer process ticks; the database decides which tick runs a job. Claiming
a run is one UPDATE that moves the job's next run time forward, and only one
transaction can move it (Dex's rule for its rotation: the storage decides races).
A process that dies mid-job leaves the next run to the next period.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Engine, Float, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from issuer.db import metadata

log = logging.getLogger(__name__)

scheduled_jobs = Table(
    "scheduled_jobs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_run_at", Float, nullable=False),
    Column("last_run_at", Float),
    # host:pid of the process that claimed the last run, for an operator's eyes.
    Column("last_run_by", String(200)),
)


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def claim(engine: Engine, name: str, period: float, now: float | None = None) -> bool:
    """Whether this process runs `name` now: True for exactly one caller per period."""
    now = time.time() if now is None else now
    t = scheduled_jobs
    run = {"next_run_at": now + period, "last_run_at": now, "last_run_by": _me()}
    with engine.begin() as conn:
        won = conn.execute(
            update(t).where(t.c.name == name, t.c.next_run_at <= now).values(**run)
        ).rowcount
        if won:
            return True
        if conn.execute(select(t.c.name).where(t.c.name == name)).first() is not None:
            return False
    try:
        with engine.begin() as conn:
            conn.execute(insert(t).values(name=name, **run))
    except IntegrityError:  # another process's first run
        return False
    return True


def next_run(engine: Engine, name: str) -> float | None:
    with engine.connect() as conn:
        return conn.execute(
            select(scheduled_jobs.c.next_run_at).where(scheduled_jobs.c.name == name)
        ).scalar()


@dataclass(frozen=True)
class Job:
    name: str
    period: float
    run: Callable[[], None]


class Scheduler:
    """A daemon thread that, every `tick` seconds, runs the jobs it can claim."""

    def __init__(self, engine: Engine, jobs: list[Job], tick: float = 30.0) -> None:
        self.engine = engine
        self.jobs = jobs
        self.tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="issuer-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_due(self) -> None:
        for job in self.jobs:
            try:
                if claim(self.engine, job.name, job.period):
                    job.run()
            except Exception:  # a failed run must not end the timer; the next period retries
                log.exception("scheduled job %s failed", job.name)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self.run_due()
