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

Rows are read in chunks and counted against the response limit as they arrive,
as Neon's proxy counts them while it streams: a query that returns without end
(a cross join, `generate_series` to a billion) is refused with a 507 once it has
sent the limit's worth, and never held whole in the proxy's memory.
"""

from __future__ import annotations

import select
import time
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
    first = 2 if request.batch else 1  # after BEGIN and the hand-off, before COMMIT
    options = request.options
    array_modes = [
        options.array_mode if statement.array_mode is None else statement.array_mode
        for statement in request.statements
    ]
    keyed = {index for index, array in enumerate(array_modes, first) if not array}
    rows = _Rows(Transformer.from_context(conn), max_response_bytes, keyed)
    results, failed = run(lease, commands, watchdog, time_limit, rows)
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

    out = []
    for index, array_mode in enumerate(array_modes, first):
        result = results[index]
        status = (result.command_status or b"").decode(encoding)
        out.append(
            result_json(_fields(result), rows.of(index), status, options.raw_text, array_mode)
        )
    return out


def _not_utf8() -> ProxyError:
    """A batch can switch client_encoding (set_config): what then arrives is not UTF8."""
    return ProxyError("the result is not valid UTF8: client_encoding must stay UTF8")


#: Rows libpq hands over at a time: beyond the response limit, the proxy holds at
#: most this many rows of a result before it can refuse it. Measured: 10 costs a
#: 50-row read no more CPU than one chunk of 100; single rows cost half again.
CHUNK_ROWS = 10


class _Rows:
    """The rows of each command, loaded as text chunk by chunk, and refused as soon
    as they exceed the response limit.

    Each chunk is charged about what its JSON takes, as Neon's proxy counts the
    JSON it has built: a value its text, a NULL four bytes ("null"), a row its
    brackets and commas, and in object mode (the commands in `keyed`) its keys. A
    stream of nulls or of rows without columns is bounded too.
    """

    def __init__(self, transformer: Transformer, limit: int, keyed: set[int]) -> None:
        self._transformer = transformer
        self._limit = limit
        self._room = limit
        self._keyed = keyed
        self._key_costs: dict[int, int] = {}  # per keyed command: its chunks share fields
        self._by_command: dict[int, list[Any]] = {}

    def add(self, command: int, result: pq.abc.PGresult) -> None:
        count, width = result.ntuples, result.nfields
        if not count:
            return
        rows: list[Any] = []
        row_cost = 2 + width
        if command in self._keyed:  # '"name":' for every value
            key_cost = self._key_costs.get(command)
            if key_cost is None:
                key_cost = sum(len(result.fname(i) or b"") + 3 for i in range(width))
                self._key_costs[command] = key_cost
            row_cost += key_cost
        self._room -= count * row_cost
        if width:
            self._transformer.set_pgresult(result)
            try:
                rows = self._transformer.load_rows(0, count, tuple)
            except UnicodeDecodeError:
                raise _not_utf8() from None
            values = list(chain.from_iterable(rows))
            self._room -= sum(map(len, filter(None, values))) + 4 * values.count(None)
        if self._room < 0:
            raise ResponseTooLarge(self._limit)
        if rows:
            self._by_command.setdefault(command, []).extend(rows)

    def of(self, command: int) -> list[Any]:
        return self._by_command.get(command, [])


_RESET: list[Command] = [(statement, None) for statement in RESET_STATEMENTS]
_RESET_DONE = frozenset({pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK})


def run(
    lease: Lease,
    commands: list[Command],
    watchdog: Watchdog,
    time_limit: float,
    rows: _Rows | None = None,
) -> tuple[list[pq.abc.PGresult], pq.abc.PGresult | None]:
    """Send `commands`, then the connection's reset, in one round trip under the time
    limit; the commands' results and the first that failed. With `rows`, the
    commands' rows are read there, as they arrive, not from the results. A lost or
    timed-out connection is closed and raised as a ProxyError, and so is one left
    mid-result by a response too large; a failed command leaves the connection
    usable (the pipeline stopped)."""
    conn = lease.conn
    give_up = time.monotonic() + time_limit + CANCEL_GRACE
    # Closing happens after the deadline block, whose exit waits for a cancel in
    # progress: the watchdog's thread never reads a connection being freed.
    try:
        with watchdog.deadline(time_limit, lambda: conn.cancel_safe(timeout=2)) as fired:
            results, reset = _round_trip(conn.pgconn, [commands, _RESET], rows, give_up)
    except (psycopg.Error, _CopyRefused) as error:
        raise _unusable(conn, str(error), fired[0], time_limit) from None
    except BaseException as error:
        # Given up on mid-request (too large, not UTF8, or a query that outlived its
        # cancel: a PL/pgSQL loop can catch query_canceled): nothing half-read goes
        # back to the pool, and the backend is ended, since a query that never
        # writes again would not notice its socket closed.
        pid = conn.info.backend_pid
        conn.close()
        lease.pool.terminate(pid)
        if isinstance(error, _GaveUp):
            raise _time_limit_error(time_limit) from None
        raise
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
        return _time_limit_error(limit)
    if lost:
        return ProxyError("the database connection was lost while running the query", status=503)
    # COPY needs a sub-protocol HTTP cannot carry; the connection is left in it.
    return ProxyError(f"unsupported statement: {reason.splitlines()[0]}")


def _time_limit_error(limit: float) -> ProxyError:
    return ProxyError(
        f"canceling statement due to the proxy's time limit ({limit:g} s)", code="57014"
    )


#: Seconds a request may still take after its time limit (and the cancel sent then)
#: before the proxy gives up on its connection.
CANCEL_GRACE = 2.0


class _GaveUp(Exception):
    """The request outlived its time limit and the grace after its cancel."""


class _CopyRefused(Exception):
    """A statement started COPY, which HTTP cannot carry."""


_COPY = frozenset({pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH})


def _round_trip(
    pgconn: pq.abc.PGconn, segments: list[list[Command]], rows: _Rows | None, give_up: float
) -> list[list[pq.abc.PGresult]]:
    """Send each segment of commands followed by a Sync, and read back one result per
    command, segment by segment; with `rows`, the first segment's rows go there in
    chunks of CHUNK_ROWS as they arrive. Waiting past `give_up` (a monotonic time)
    raises _GaveUp.

    libpq directly rather than psycopg's pipeline: a quarter of the CPU for the
    same messages (about 25 instead of 100 us for the hand-off and one query).
    Commands Postgres skipped after an error come back as PIPELINE_ABORTED, up to
    their segment's end: an error never skips the next segment. A connection lost
    after the first segment's sync point leaves the later segments' answers short.
    Parameters are untyped text, results text.
    """
    pgconn.enter_pipeline_mode()
    for number, commands in enumerate(segments):
        for index, (query, params) in enumerate(commands):
            pgconn.send_query_params(query, params)
            if rows is not None and number == index == 0:
                pgconn.set_chunked_rows_mode(CHUNK_ROWS)  # before anything is read
        pgconn.pipeline_sync()
    sending = pgconn.flush()
    answers: list[list[pq.abc.PGresult]] = [[] for _ in segments]
    segment, answer = 0, None
    try:
        while segment < len(segments):
            while True:
                while pgconn.notifies() is not None:
                    pass  # a client's LISTEN ends with its request; nobody reads these
                if not pgconn.is_busy():  # it parses what was read
                    break
                # Read while writing: a long batch must not deadlock against results
                # filling the server's output buffer, and what arrives meanwhile is
                # parsed chunk by chunk (notifications too), never piled up unread.
                _wait(pgconn, select.POLLIN | (select.POLLOUT if sending else 0), give_up)
                if sending:
                    sending = pgconn.flush()
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:  # the end of one command's results
                if answer is not None:
                    answers[segment].append(answer)
                    answer = None
                if pgconn.status == pq.ConnStatus.BAD:
                    raise psycopg.OperationalError("the connection was lost")
                if (
                    rows is not None
                    and segment == 0
                    and len(answers[0]) < len(segments[0])
                    and pgconn.pipeline_status == pq.PipelineStatus.ON
                ):
                    pgconn.set_chunked_rows_mode(CHUNK_ROWS)  # the next command's
                continue
            status = result.status
            if status == pq.ExecStatus.PIPELINE_SYNC:
                segment += 1
            elif status in _COPY:
                raise _CopyRefused("COPY cannot be used in pipeline mode")
            else:
                if rows is not None and segment == 0:
                    rows.add(len(answers[0]), result)
                # A command's answer: its error, or the result that carries its
                # status (in chunked mode, whichever chunk was current at its end).
                if answer is None or result.command_status or status == pq.ExecStatus.FATAL_ERROR:
                    answer = result
    except psycopg.OperationalError:
        if segment == 0:
            raise
        # The first segment is complete (a request may have committed): its answer
        # stands; the later segments come back short, on a connection to close.
        if answer is not None:
            answers[segment].append(answer)
        return answers
    pgconn.exit_pipeline_mode()
    return answers


def _wait(pgconn: pq.abc.PGconn, events: int, give_up: float) -> None:
    poller = select.poll()
    poller.register(pgconn.socket, events)
    if not poller.poll(max(0, int((give_up - time.monotonic()) * 1000) + 1)):
        raise _GaveUp


def _fields(result: pq.abc.PGresult) -> list[Field]:
    try:
        names = [(result.fname(i) or b"").decode() for i in range(result.nfields)]
    except UnicodeDecodeError:
        raise _not_utf8() from None
    return [
        Field(
            name=name,
            type_oid=result.ftype(i),
            table_oid=result.ftable(i),
            column=result.ftablecol(i),
            size=result.fsize(i),
            modifier=result.fmod(i),
        )
        for i, name in enumerate(names)
    ]
