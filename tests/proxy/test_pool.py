"""The proxy's connection pool: LIFO lending, bounded size, recovery from lost connections,
and the reset that rides in each request's round trip."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.pq import ExecStatus

from proxy.errors import BackendUnavailable
from proxy.pipeline import Command, _round_trip, run
from proxy.pool import BackendSettings, ConnectionPool, Lease, Pools
from proxy.protocol import Target
from proxy.watchdog import Watchdog
from stack.migrate import LocalDatabase

AUTHENTICATED = Target(role="authenticated", database="neondb")


@pytest.fixture
def pools(neon_db: LocalDatabase) -> Iterator[Pools]:
    pools = Pools(
        BackendSettings(
            host=str(neon_db.server.socket_dir),
            port=neon_db.server.port,
            statement_timeout_ms=10_000,
            pool_size=3,
            pool_timeout=0.3,
        )
    )
    yield pools
    pools.close()


def test_the_connection_returned_last_is_lent_first(pools: Pools) -> None:
    leases = [pools.acquire(AUTHENTICATED) for _ in range(3)]
    pids = [lease.conn.info.backend_pid for lease in leases]
    assert len(set(pids)) == 3
    for lease in leases:
        lease.release()
    for _ in range(5):
        lease = pools.acquire(AUTHENTICATED)
        assert lease.conn.info.backend_pid == pids[-1]
        lease.release()


def test_connections_are_opened_only_when_every_open_one_is_busy(
    pools: Pools, neon_db: LocalDatabase
) -> None:
    query = "select pid from pg_stat_activity where application_name = 'neon-proxy-local'"
    with psycopg.connect(neon_db.owner_url, autocommit=True) as owner:
        before = {pid for (pid,) in owner.execute(query)}
        for _ in range(5):
            pools.acquire(AUTHENTICATED).release()
        opened = {pid for (pid,) in owner.execute(query)} - before
    assert len(opened) == 1


def test_a_full_pool_is_a_503_after_the_pool_timeout_then_recovers(pools: Pools) -> None:
    held = [pools.acquire(AUTHENTICATED) for _ in range(3)]
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="every pooled connection is busy"):
        pools.acquire(AUTHENTICATED)
    assert 0.25 <= time.monotonic() - started < 3
    held.pop().release()
    pools.acquire(AUTHENTICATED).release()
    for lease in held:
        lease.release()


def test_a_lost_connection_frees_its_slot_for_a_new_one(pools: Pools) -> None:
    held = [pools.acquire(AUTHENTICATED) for _ in range(3)]
    lost = held.pop()
    lost_pid = lost.conn.info.backend_pid
    lost.conn.close()
    lost.release()
    fresh = pools.acquire(AUTHENTICATED)
    assert fresh.conn.info.backend_pid != lost_pid
    assert fresh.conn.execute("select 1").fetchone() == ("1",)
    for lease in [*held, fresh]:
        lease.release()


def test_a_closed_pool_closes_idle_and_returned_connections(neon_db: LocalDatabase) -> None:
    pool = ConnectionPool(lambda: psycopg.connect(neon_db.role_url("authenticated")), 2, [])
    idle, lent = pool.getconn(timeout=1), pool.getconn(timeout=1)
    pool.putconn(idle)
    pool.close()
    assert idle.closed
    with pytest.raises(BackendUnavailable, match="shutting down"):
        pool.getconn(timeout=0.1)
    pool.putconn(lent)
    assert lent.closed


def _request(pools: Pools, *statements: bytes) -> tuple[Lease, bool]:
    """One request's round trip of `statements`; its lease, and whether one failed."""
    lease = pools.acquire(AUTHENTICATED)
    commands: list[Command] = [(statement, None) for statement in statements]
    _, failed = run(lease, commands, Watchdog(), time_limit=10)
    return lease, failed is not None


def _left_behind(pools: Pools, pid: int) -> tuple[str, ...]:
    """What the next request on the same backend finds: work_mem, its advisory locks,
    whether it runs in a transaction of its own."""
    lease = pools.acquire(AUTHENTICATED)
    try:
        assert lease.conn.info.backend_pid == pid  # LIFO: the connection just returned
        return lease.conn.execute(
            "select current_setting('work_mem'),"
            " (select count(*) from pg_locks where locktype = 'advisory'"
            "  and pid = pg_backend_pid()),"
            " now() = statement_timestamp()"
        ).fetchone()
    finally:
        lease.release()


CLEAN = ("4MB", "0", "t")


def test_the_reset_rides_in_the_requests_round_trip(pools: Pools) -> None:
    lease, failed = _request(pools, b"set work_mem = '77MB'", b"select pg_advisory_lock(7)")
    assert not failed
    assert lease.reset  # every reset statement ran: release() needs no round trip
    pid = lease.conn.info.backend_pid
    lease.release()
    assert _left_behind(pools, pid) == CLEAN


def test_a_transaction_the_client_left_open_is_rolled_back_and_reset(pools: Pools) -> None:
    # The reset then ran inside the client's transaction, where a rollback would undo it.
    lease, failed = _request(
        pools, b"begin", b"set work_mem = '77MB'", b"select pg_advisory_lock(7)"
    )
    assert not failed
    pid = lease.conn.info.backend_pid
    lease.release()
    assert _left_behind(pools, pid) == CLEAN


def test_a_failed_transaction_is_rolled_back_and_reset(pools: Pools) -> None:
    lease, failed = _request(
        pools, b"select pg_advisory_lock(7)", b"begin", b"set work_mem = '77MB'", b"select 1/0"
    )
    assert failed
    assert not lease.reset  # the reset met the aborted transaction
    pid = lease.conn.info.backend_pid
    lease.release()
    assert _left_behind(pools, pid) == CLEAN


def test_a_connection_lost_during_the_reset_keeps_the_requests_answer(pools: Pools) -> None:
    # The request may have committed: it must not be reported as failed.
    lease = pools.acquire(AUTHENTICATED)
    request = [(b"select 'committed'", None)]
    reset = [(b"select pg_terminate_backend(pg_backend_pid())", None), (b"select 1", None)]
    answers, rest = _round_trip(lease.conn.pgconn, [request, reset], None, time.monotonic() + 10)
    assert [result.get_value(0, 0) for result in answers] == [b"committed"]
    assert rest[0].status == ExecStatus.FATAL_ERROR  # the reset did not happen
    lease.release()
    assert lease.conn.closed
