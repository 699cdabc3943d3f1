"""The proxy's connection pool: LIFO lending, bounded size, recovery from lost connections."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from proxy.errors import BackendUnavailable
from proxy.pool import BackendSettings, ConnectionPool, Pools
from proxy.protocol import Target
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
