"""The fleet's parts cost the request path nothing (issue 11), in process.

Figures (contender and baseline alternate in rounds; medians of wall-clock throughput;
`/token` is a client_credentials grant through the Flask test client, JWKS the
middleware):
- `/token` with the key ring in PostgreSQL (`ISSUER_KEYS_STORE=database`, the issuer's
  database on the embedded PostgreSQL) vs the same issuer with the ring in SQLite.
  The ring is read from its snapshot; changes are pushed by NOTIFY, and the database
  is asked for its version only every 30 s while they are.
- `/token` and JWKS while the scheduler ticks (every 250 ms, garbage collection
  every second: thousands of times more often than in production) vs without it.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from flask import Flask

from bench.report import Figure, median
from issuer import create_app, gc
from issuer.config import Config
from issuer.oauth import clients
from issuer.oauth.clients import Registration
from issuer.schedule import Job, Scheduler
from stack import postgres

MASTER = "bench master key, 32 characters or more"
ROUNDS = 9
# The scheduler ticks every TICK seconds and collects every GC_PERIOD: 120 and 3,600
# times as often as in production (30 s, ISSUER_GC_INTERVAL's 1 h), so that each
# round of about a second sees work to interfere with.
TICK = 0.25
GC_PERIOD = 1.0
SUITE = "fleet"


def run() -> list[Figure]:
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-", dir="/tmp"))
    data_dir = root / "pg"
    try:
        server = postgres.start(data_dir)
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE issuer_bench")
        on_pg = _issuer(root / "pg-issuer", server.url(dbname="issuer_bench"))
        on_sqlite = _issuer(root / "sqlite-issuer", f"sqlite:///{root / 'issuer.sqlite3'}")
        try:
            return _measure(on_pg, on_sqlite)
        finally:
            # Their rings listen for pushed changes in threads of this process, which
            # would otherwise keep reconnecting to the stopped server through the
            # suites that follow.
            for app, _ in (on_pg, on_sqlite):
                app.extensions["keyring"].close()
    finally:
        postgres.stop(data_dir, mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


def _issuer(home: Path, database_url: str) -> tuple[Flask, Callable[[], object]]:
    config = Config(
        keys_store="database",
        keys_master_key=MASTER,
        keys_dir=home / "keys",
        data_dir=home / "data",
        database_url=database_url,
        secret_key="bench",
    )
    app = create_app(config)
    app.extensions["keyring"].init()
    client, secret = clients.register(
        app.extensions["db"],
        Registration(name="bench service", grant_types=("client_credentials",), public=False),
    )
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    http = app.test_client()

    def token() -> object:
        answer = http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert answer.status_code == 200, answer.text
        return answer

    return app, token


def _wall_throughput(operation: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls per wall-clock second: the database's own process works for `/token` too,
    and CPU time of this process alone would not count it."""
    calls, begin = 0, time.perf_counter()
    while True:
        for _ in range(16):
            operation()
        calls += 16
        elapsed = time.perf_counter() - begin
        if elapsed >= seconds:
            return calls / elapsed


def _rounds(
    contender: Callable[[], object],
    baseline: Callable[[], object],
    around: Callable[[], Callable[[], None]] | None = None,
) -> tuple[float, float]:
    """Medians over rounds that alternate which side goes first (so that drift and
    warm-up favour neither); `around()` starts something for the contender's round
    and returns how to stop it."""

    def contend() -> float:
        stop = around() if around is not None else None
        try:
            return _wall_throughput(contender)
        finally:
            if stop is not None:
                stop()

    ours, theirs = [], []
    for round_number in range(ROUNDS):
        if round_number % 2:
            theirs.append(_wall_throughput(baseline))
            ours.append(contend())
        else:
            ours.append(contend())
            theirs.append(_wall_throughput(baseline))
    return median(ours), median(theirs)


def _measure(
    on_pg: tuple[Flask, Callable[[], object]], on_sqlite: tuple[Flask, Callable[[], object]]
) -> list[Figure]:
    pg_app, pg_token = on_pg
    _, sqlite_token = on_sqlite
    ring_pg, ring_sqlite = _rounds(pg_token, sqlite_token)
    http = pg_app.test_client()
    engine = pg_app.extensions["db"]

    def jwks() -> object:
        return http.get("/.well-known/jwks.json")

    def scheduler_running() -> Callable[[], None]:
        collect = Job("bench-gc", GC_PERIOD, lambda: gc.collect(engine, retention=0))
        scheduler = Scheduler(engine, [collect], tick=TICK)
        scheduler.start()
        return scheduler.stop

    token_busy, token_quiet = _rounds(pg_token, pg_token, scheduler_running)
    jwks_busy, jwks_quiet = _rounds(jwks, jwks, scheduler_running)
    return [
        Figure(
            SUITE,
            "POST /token, key ring in PostgreSQL",
            "req/s",
            ring_pg,
            "same issuer, key ring in SQLite",
            ring_sqlite,
            ">= 0.9",
        ),
        Figure(
            SUITE,
            "POST /token while GC and the scheduler run",
            "req/s",
            token_busy,
            "same, without them",
            token_quiet,
            ">= 0.95",
        ),
        Figure(
            SUITE,
            "GET jwks.json while GC and the scheduler run",
            "req/s",
            jwks_busy,
            "same, without them",
            jwks_quiet,
            ">= 0.95",
        ),
    ]
