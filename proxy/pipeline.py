"""Running one `/sql` request on a pooled connection in a single round trip.

An optional `BEGIN ...` for a batch, the session hand-off (`select
auth.jwt_session_init($1)` with the internal token as a bind parameter), the
client's statements and the batch's `COMMIT` are sent as one libpq pipeline.
Postgres skips everything after the first error until the pipeline's sync
point, so a failed hand-off means no client SQL runs, and a failed batch
statement aborts the transaction.

The connection's reset follows in the same round trip, after that sync point, so
an error in the request never skips it, and the pool's hygiene costs no round
trip of its own. It runs in a transaction of its own unless the request left one
open; `proxy.pool.Lease.release()` then rolls back and resets again.
"""

from __future__ import annotations

import select
from itertools import chain
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer

from proxy.errors import PostgresError, ProxyError, ResponseTooLarge
from proxy.pool import RESET_STATEMENTS, Lease
from proxy.protocol import Field, SqlRequest, result_json
from proxy.watchdog import Watchdog

SESSION_INIT = b"select auth.jwt_session_init($1)"
# What the session hand-off raises for claims it refuses (datatype_mismatch,
# check_violation), as opposed to a deployment problem (no key installed, say).
_CLAIMS_REFUSED = frozenset({"42804", "23514"})


class SessionInitFailed(ProxyError):
    """The database refused the proxy's own session token: a deployment problem."""

    status = 500


def _begin(request: SqlRequest) -> str:
    options = request.options
    words = ["BEGIN"]
    if options.isolation:
        words.append(f"ISOLATION LEVEL {options.isolation}")
    if options.read_only:
        words.append("READ ONLY")
    if options.deferrable:
        words.append("DEFERRABLE")
    return " ".join(words)


Command = tuple[bytes, list[bytes | None] | None]


def execute(
    lease: Lease,
    session_token: str,
    request: SqlRequest,
    watchdog: Watchdog,
    time_limit: float,
    max_response_bytes: int,
) -> list[dict[str, Any]]:
    conn = lease.conn
    encoding = conn.info.encoding
    commands = _commands(request, session_token, encoding)
    results, failed = run(lease, commands, watchdog, time_limit)
    first = 2 if request.batch else 1  # after BEGIN and the hand-off, before COMMIT
    if failed is not None:
        error = psycopg.errors.error_from_result(failed, encoding=encoding)
        if failed is results[first - 1]:
            conn.close()  # a session that cannot start is not worth keeping
            if error.sqlstate in _CLAIMS_REFUSED:
                # The user's own claims, refused as pg_session_jwt refuses them (an
                # `exp` of null, say, which Neon's proxy lets through): their error.
                raise PostgresError(error)
            raise SessionInitFailed(
                f"could not initialise the database session: {error.diag.message_primary}"
            )
        raise PostgresError(error)

    options = request.options
    transformer = Transformer.from_context(conn)
    out, room = [], max_response_bytes
    statement_results = results[first : first + len(request.statements)]
    for result, statement in zip(statement_results, request.statements, strict=True):
        array_mode = options.array_mode if statement.array_mode is None else statement.array_mode
        rows, room = _rows(transformer, result, room, max_response_bytes)
        status = (result.command_status or b"").decode(encoding)
        out.append(result_json(_fields(result), rows, status, options.raw_text, array_mode))
    return out


_RESET: list[Command] = [(statement, None) for statement in RESET_STATEMENTS]
_RESET_DONE = frozenset({pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK})


def run(
    lease: Lease, commands: list[Command], watchdog: Watchdog, time_limit: float
) -> tuple[list[pq.abc.PGresult], pq.abc.PGresult | None]:
    """Send `commands`, then the connection's reset, in one round trip under the time
    limit; the commands' results and the first that failed. A lost or timed-out
    connection is closed and raised as a ProxyError; a failed command leaves the
    connection usable (the pipeline stopped)."""
    conn = lease.conn
    with watchdog.deadline(time_limit, lambda: conn.cancel_safe(timeout=2)) as fired:
        try:
            results, reset = _round_trip(conn.pgconn, commands, _RESET)
        except (psycopg.Error, _CopyRefused) as error:
            raise _unusable(conn, str(error), fired[0], time_limit) from None
    # Inside a transaction the client left open (or aborted), the reset either failed
    # or would be rolled back with it: `release()` then tells by the transaction
    # status, and resets again after its rollback. A cancel that fired may have
    # landed in the reset, or land late: never the fast path then.
    lease.reset = (
        not fired[0]
        and len(reset) == len(_RESET)
        and all(result.status in _RESET_DONE for result in reset)
    )
    failed = next((r for r in results if r.status == pq.ExecStatus.FATAL_ERROR), None)
    if failed is not None and (fired[0] or conn.pgconn.status == pq.ConnStatus.BAD):
        raise _unusable(conn, "", fired[0], time_limit)
    return results, failed


def _commands(request: SqlRequest, session_token: str, encoding: str) -> list[Command]:
    """The pipeline's queries and their text parameters (None: no parameters)."""
    commands: list[Command] = []
    if request.batch:
        # BEGIN goes first: isolation settings must precede any query.
        commands.append((_begin(request).encode(), None))
    commands.append((SESSION_INIT, [session_token.encode()]))
    for statement in request.statements:
        params = [None if p is None else p.encode(encoding) for p in statement.params]
        commands.append((statement.query.encode(encoding), params))
    if request.batch:
        commands.append((b"COMMIT", None))
    return commands


def _unusable(conn: psycopg.Connection, reason: str, timed_out: bool, limit: float) -> ProxyError:
    """Close a connection the request left in no state to be reused, and say why."""
    lost = conn.pgconn.status == pq.ConnStatus.BAD
    conn.close()
    if timed_out:
        return ProxyError(
            f"canceling statement due to the proxy's time limit ({limit:g} s)", code="57014"
        )
    if lost:
        return ProxyError("the database connection was lost while running the query", status=503)
    # COPY needs a sub-protocol HTTP cannot carry; the connection is left in it.
    return ProxyError(f"unsupported statement: {reason.splitlines()[0]}")


class _CopyRefused(Exception):
    """A statement started COPY, which HTTP cannot carry."""


_COPY = frozenset({pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH})


def _round_trip(pgconn: pq.abc.PGconn, *segments: list[Command]) -> list[list[pq.abc.PGresult]]:
    """Send each segment of commands followed by a Sync, and read back one result per
    command, segment by segment.

    libpq directly rather than psycopg's pipeline: a quarter of the CPU for the
    same messages (about 25 instead of 100 us for the hand-off and one query).
    Commands Postgres skipped after an error come back as PIPELINE_ABORTED, up to
    their segment's end: an error never skips the next segment. A connection lost
    after the first segment's sync point leaves the later segments' answers short.
    Parameters are untyped text, results text.
    """
    pgconn.enter_pipeline_mode()
    for segment in segments:
        for query, params in segment:
            pgconn.send_query_params(query, params)
        pgconn.pipeline_sync()
    # Read while writing: a long batch must not deadlock against results filling
    # the server's output buffer.
    while pgconn.flush():
        _wait(pgconn, select.POLLIN | select.POLLOUT)
        pgconn.consume_input()
    answers: list[list[pq.abc.PGresult]] = [[] for _ in segments]
    segment = 0
    try:
        while segment < len(segments):
            while pgconn.is_busy():
                _wait(pgconn, select.POLLIN)
                pgconn.consume_input()
            while pgconn.notifies() is not None:
                pass  # a client's LISTEN ends with its request; nobody reads these
            result = pgconn.get_result()
            if result is None:
                if pgconn.status == pq.ConnStatus.BAD:
                    raise psycopg.OperationalError("the connection was lost")
                continue  # the end of one command's results
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                segment += 1
            elif result.status in _COPY:
                raise _CopyRefused("COPY cannot be used in pipeline mode")
            else:
                answers[segment].append(result)
    except psycopg.OperationalError:
        if segment == 0:
            raise
        # The first segment is complete (a request may have committed): its answer
        # stands; the later segments come back short, on a connection to close.
        return answers
    pgconn.exit_pipeline_mode()
    return answers


def _wait(pgconn: pq.abc.PGconn, events: int) -> None:
    poller = select.poll()
    poller.register(pgconn.socket, events)
    poller.poll()


def _fields(result: pq.abc.PGresult) -> list[Field]:
    return [
        Field(
            name=(result.fname(i) or b"").decode(),
            type_oid=result.ftype(i),
            table_oid=result.ftable(i),
            column=result.ftablecol(i),
            size=result.fsize(i),
            modifier=result.fmod(i),
        )
        for i in range(result.nfields)
    ]


def _rows(
    transformer: Transformer, result: pq.abc.PGresult, room: int, limit: int
) -> tuple[list[Any], int]:
    """The rows as text, refused as soon as their values alone exceed the response limit.

    Checked while loading, so an oversized result is never converted to JSON.
    """
    rows: list[Any] = []
    if not result.nfields:
        return rows, room
    transformer.set_pgresult(result)
    for start in range(0, result.ntuples, 1000):
        batch = transformer.load_rows(start, min(start + 1000, result.ntuples), tuple)
        # NULLs (and empty strings) are dropped by filter(None, ...): they take no room.
        room -= sum(map(len, filter(None, chain.from_iterable(batch))))
        if room < 0:
            raise ResponseTooLarge(f"response is too large (max is {limit} bytes)")
        rows.extend(batch)
    return rows, room
