"""Connection pools to Postgres, one per (role, database), with Neon-like hygiene.

Connections log in as the connection string's role directly, read every value
as text (the protocol types values by OID itself), never prepare statements
(the client's SQL must go through Parse/Bind/Execute unnamed, one statement at a
time), carry the proxy's `statement_timeout`, and are reset (`RESET_STATEMENTS`
below) after each request, within the request's own round trip (see `Lease`).

A pool lends the connection returned last (LIFO) and opens connections only
when every open one is busy. Under a light load the same one or two backends
serve every request while their caches are warm; psycopg_pool's pool lends in
FIFO order, which sent consecutive requests to all eight backends in turn and
cost about 0.3 ms per request at one client (measured with bench/proxy.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg.adapt import AdaptersMap
from psycopg.postgres import types as pg_types
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.types.string import TextLoader

from proxy.errors import BackendUnavailable, ProxyError
from proxy.protocol import Target

log = logging.getLogger(__name__)


def _text_adapters() -> AdaptersMap:
    """Psycopg's dumpers, but every result column loaded as the text Postgres sent."""
    adapters = AdaptersMap(psycopg.adapters)
    for oid in {0, *(info.oid for info in pg_types), *(info.array_oid for info in pg_types)}:
        adapters.register_loader(oid, TextLoader)
    return adapters


TEXT_ADAPTERS = _text_adapters()


@dataclass(frozen=True)
class BackendSettings:
    """Where Postgres is and how pooled connections behave."""

    host: str
    port: int
    statement_timeout_ms: int
    pool_size: int
    pool_timeout: float
    max_pools: int = 32
    connect_timeout: int = 5


# DISCARD ALL minus DISCARD PLANS: every piece of session state a client can leave
# behind (cursors, role, settings, prepared statements, LISTEN, advisory locks,
# sequence state, temp objects) goes, but the server keeps its cached plans, which
# hold no session data; dropping them would make every request re-plan the
# `auth` functions (measured: +250 us per request). One statement at a time, as a
# pipeline carries them (see `Lease`).
RESET_STATEMENTS = (
    b"CLOSE ALL",
    b"SET SESSION AUTHORIZATION DEFAULT",
    b"RESET ALL",
    b"DEALLOCATE ALL",
    b"UNLISTEN *",
    b"SELECT pg_catalog.pg_advisory_unlock_all()",  # whatever the role's search_path
    b"DISCARD SEQUENCES",
    b"DISCARD TEMP",
)
RESET = b"; ".join(RESET_STATEMENTS)


class PoolTimeout(Exception):
    """No connection came free in time."""


class ConnectionPool:
    """At most `size` connections to one (role, database), the last returned lent first.

    A connection that comes back closed (lost, or left unusable by a statement)
    frees its slot, and the next request that finds no idle connection opens a
    new one.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        size: int,
        idle: list[psycopg.Connection],
    ) -> None:
        self._connect = connect
        self._size = size
        self._idle = idle
        self._open = len(idle)  # idle, lent, or being connected
        self._closed = False
        self._waiting = 0
        self._changed = threading.Condition()

    def stats(self) -> dict[str, int]:
        """The pool's use now: its size, connections open (idle or lent), idle, and
        requests waiting for one."""
        with self._changed:
            return {
                "size": self._size,
                "open": self._open,
                "idle": len(self._idle),
                "waiting": self._waiting,
            }

    def getconn(self, timeout: float) -> psycopg.Connection:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if self._closed:
                    raise BackendUnavailable("the proxy is shutting down")
                if self._idle:
                    return self._idle.pop()
                if self._open < self._size:
                    self._open += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolTimeout
                self._waiting += 1
                try:
                    self._changed.wait(remaining)
                finally:
                    self._waiting -= 1
        try:
            return self._connect()
        except BaseException:
            self._forget()
            raise

    def terminate(self, pid: int) -> None:
        """End the backend of a connection given up on, from a connection of its own.

        Closing a socket ends a query only when the server next writes to it; one
        that sleeps, or catches its cancels in a PL/pgSQL loop, would keep its
        backend (and a slot of `max_connections`) for ever. The same role may
        signal its own backends.
        """
        try:
            with self._connect() as conn:
                conn.pgconn.exec_(b"SELECT pg_catalog.pg_terminate_backend(%d)" % pid)
        except psycopg.Error as error:
            log.warning("could not end backend %d: %s", pid, error)

    def putconn(self, conn: psycopg.Connection) -> None:
        with self._changed:
            if not (conn.closed or self._closed):
                self._idle.append(conn)
                self._changed.notify()
                return
        conn.close()
        self._forget()

    def _forget(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify()

    def close(self) -> None:
        """Close the idle connections now, and lent ones when they come back."""
        with self._changed:
            self._closed, idle, self._idle = True, self._idle, []
            self._open -= len(idle)
            self._changed.notify_all()
        for conn in idle:
            conn.close()


class Lease:
    """A pooled connection lent to one request.

    A request's round trip usually carries the reset too (`proxy.pipeline.run`
    sends `RESET_STATEMENTS` after the request's own sync point and sets `reset`
    when they all succeeded): `release()` then only checks that no transaction is
    open, and gives the connection back. Otherwise (the reset failed or never ran,
    or it ran inside a transaction the client left open) `release()` rolls back and
    resets in a round trip of its own, and closes what cannot be reset.
    """

    def __init__(self, pool: ConnectionPool, conn: psycopg.Connection) -> None:
        self.pool = pool
        self.conn = conn
        self.reset = False

    def release(self) -> None:
        conn = self.conn
        try:
            idle = conn.info.transaction_status == TransactionStatus.IDLE
            if not (self.reset and idle):
                if not idle:
                    conn.rollback()
                # libpq's own PQexec (it releases the GIL): a third of the CPU of
                # psycopg's execute() for statements whose results are only checked.
                if conn.pgconn.exec_(RESET).status != ExecStatus.COMMAND_OK:
                    conn.close()
        except psycopg.Error:
            conn.close()  # the pool replaces closed connections
        self.pool.putconn(conn)


# libpq reports a server's refusal at startup only as text ("FATAL:  ..."), without
# the SQLSTATE; these are the refusals a client's connection string can cause.
_REFUSALS = {"database": "3D000", "role": "28000"}


def _connect_error(error: psycopg.OperationalError) -> ProxyError:
    text = str(error).strip()
    _, fatal, reason = text.partition("FATAL:")
    reason = reason.strip()
    kind = reason.split(" ", 1)[0]
    if fatal and reason.endswith("does not exist") and kind in _REFUSALS:
        return ProxyError(reason, code=_REFUSALS[kind])
    return BackendUnavailable(f"could not connect to the database: {reason or text}")


# pg_session_jwt's entry point (our local `auth` schema has the same one).
_SESSION_INIT = b"SELECT to_regprocedure('auth.jwt_session_init(text)') IS NOT NULL"


def _check_session_functions(conn: psycopg.Connection, target: Target) -> None:
    """Refuse a database where no request could be authenticated (`postgres`,
    `template1`, one never migrated): nothing pooled may keep it open (a lingering
    connection to `template1` makes every `CREATE DATABASE` fail)."""
    result = conn.pgconn.exec_(_SESSION_INIT)
    if result.status != ExecStatus.TUPLES_OK or result.get_value(0, 0) != b"t":
        raise ProxyError(
            f'database "{target.database}" is not set up for authenticated access: '
            "it has no auth.jwt_session_init (install pg_session_jwt, or run `make migrate`)",
            code="3F000",
        )


#: Seconds a database without the session functions is refused without asking it again.
REFUSAL_MEMORY = 5.0


class Pools:
    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self._pools: dict[Target, ConnectionPool] = {}
        # Databases refused lately, and why: a client cannot make us reconnect to
        # `template1` (blocking CREATE DATABASE) as fast as it can send requests.
        self._refused: dict[Target, tuple[float, ProxyError]] = {}
        self._lock = threading.Lock()

    def conninfo(self, target: Target) -> dict[str, object]:
        s = self.settings
        return {
            "host": s.host,
            "port": s.port,
            "user": target.role,
            "dbname": target.database,
            "connect_timeout": s.connect_timeout,
            "application_name": "neon-proxy-local",
            # Startup settings outrank the role's own defaults, which any user of the
            # role can change (ALTER ROLE CURRENT_USER SET ...), and RESET ALL returns
            # to them: results always arrive as UTF8.
            "client_encoding": "UTF8",
            "options": f"-c statement_timeout={s.statement_timeout_ms}",
        }

    def stats(self) -> list[tuple[Target, dict[str, int]]]:
        """Every pool's use (see `ConnectionPool.stats`)."""
        with self._lock:
            pools = list(self._pools.items())
        return [(target, pool.stats()) for target, pool in pools]

    def acquire(self, target: Target) -> Lease:
        pool = self._pools.get(target) or self._open(target)
        try:
            return Lease(pool, pool.getconn(timeout=self.settings.pool_timeout))
        except PoolTimeout:
            raise BackendUnavailable(
                "could not get a database connection in time: every pooled connection is busy"
            ) from None
        except psycopg.OperationalError as error:
            raise _connect_error(error) from None

    def _open(self, target: Target) -> ConnectionPool:
        with self._lock:
            pool = self._pools.get(target)
            if pool is not None:
                return pool
            refused = self._refused.get(target)
            if refused is not None and refused[0] > time.monotonic():
                raise refused[1]
            if len(self._pools) >= self.settings.max_pools:
                raise ProxyError("too many distinct roles and databases in use", status=503)
            kwargs = self.conninfo(target) | {
                "autocommit": True,
                "prepare_threshold": None,
                "context": TEXT_ADAPTERS,
                "cursor_factory": psycopg.RawCursor,
            }

            def connect() -> psycopg.Connection:
                return psycopg.connect(**kwargs)

            # The first connection is made before the pool exists: a wrong database or
            # role name, or a database without the session functions, is the client's
            # error (400 with Postgres' words), and opens no pool.
            try:
                first = connect()
            except psycopg.OperationalError as error:
                raise _connect_error(error) from None
            try:
                _check_session_functions(first, target)
            except ProxyError as error:
                first.close()
                self._refused[target] = (time.monotonic() + REFUSAL_MEMORY, error)
                raise
            except psycopg.OperationalError as error:
                first.close()
                raise _connect_error(error) from None
            pool = ConnectionPool(connect, self.settings.pool_size, [first])
            self._pools[target] = pool
            return pool

    def targets(self) -> list[Target]:
        """The (role, database) pairs this process has opened a pool for."""
        return list(self._pools)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
