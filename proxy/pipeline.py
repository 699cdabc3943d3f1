"""Running one `/sql` request on a pooled connection in a single round trip.

An optional `BEGIN ...` for a batch, the session hand-off (`select
auth.jwt_session_init($1)` with the internal token as a bind parameter), the
client's statements and the batch's `COMMIT` are sent as one libpq pipeline.
Postgres skips everything after the first error until the pipeline's sync
point, so a failed hand-off means no client SQL runs, and a failed batch
statement aborts the transaction.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import psycopg
from psycopg import pq

from proxy.errors import PostgresError, ProxyError, ResponseTooLarge
from proxy.protocol import Field, SqlRequest, result_json
from proxy.watchdog import Watchdog

SESSION_INIT = "select auth.jwt_session_init($1)"


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


def execute(
    conn: psycopg.Connection,
    session_token: str,
    request: SqlRequest,
    watchdog: Watchdog,
    time_limit: float,
    max_response_bytes: int,
) -> list[dict[str, Any]]:
    init = conn.cursor()
    statements = [conn.cursor() for _ in request.statements]
    with watchdog.deadline(time_limit, lambda: conn.cancel_safe(timeout=2)) as fired:
        try:
            with conn.pipeline():
                # BEGIN goes first: isolation settings must precede any query.
                if request.batch:
                    conn.execute(_begin(request), prepare=False)
                init.execute(SESSION_INIT, [session_token], prepare=False)
                for cursor, statement in zip(statements, request.statements, strict=True):
                    cursor.execute(statement.query, statement.params, prepare=False)
                if request.batch:
                    conn.execute("COMMIT", prepare=False)
        except psycopg.Error as error:
            if fired[0]:
                conn.close()
                raise ProxyError(
                    f"canceling statement due to the proxy's time limit ({time_limit:g} s)",
                    code="57014",
                ) from None
            if error.sqlstate is None:
                # Raised by psycopg, not Postgres: the connection dropped, or the statement
                # needs a sub-protocol HTTP cannot carry (COPY). Either way the connection
                # is in no state to be reused.
                lost = conn.broken
                conn.close()
                if lost:
                    raise ProxyError(
                        "the database connection was lost while running the query", status=503
                    ) from None
                raise ProxyError(f"unsupported statement: {str(error).splitlines()[0]}") from None
            if init.pgresult is None or init.pgresult.status != pq.ExecStatus.TUPLES_OK:
                raise SessionInitFailed(
                    f"could not initialise the database session: {error.diag.message_primary}"
                ) from None
            raise PostgresError(error) from None
    options = request.options
    results, room = [], max_response_bytes
    for cursor, statement in zip(statements, request.statements, strict=True):
        array_mode = options.array_mode if statement.array_mode is None else statement.array_mode
        rows, room = _rows(cursor, room, max_response_bytes)
        results.append(
            result_json(
                _fields(cursor), rows, cursor.statusmessage or "", options.raw_text, array_mode
            )
        )
    return results


def _fields(cursor: psycopg.Cursor) -> list[Field]:
    result = cursor.pgresult
    assert result is not None  # every statement succeeded, or execute() raised
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


def _rows(cursor: psycopg.Cursor, room: int, limit: int) -> tuple[list[Any], int]:
    """The rows as text, refused as soon as their values alone exceed the response limit.

    Checked while fetching, so an oversized result is never converted to JSON.
    """
    rows: list[Any] = []
    if not cursor.description:
        return rows, room
    while batch := cursor.fetchmany(1000):
        # NULLs (and empty strings) are dropped by filter(None, ...): they take no room.
        room -= sum(map(len, filter(None, chain.from_iterable(batch))))
        if room < 0:
            raise ResponseTooLarge(f"response is too large (max is {limit} bytes)")
        rows.extend(batch)
    return rows, room
