"""What the exposed schema holds: tables and views with their columns, and functions.

PostgREST keeps a "schema cache"; so does this, per (database, schema), refreshed
after `TTL` seconds. Only names come from here; privileges are Postgres' to check
when the statement runs as the token's role. Every identifier the compiler puts in
SQL is one of these names, quoted.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import psycopg

#: Seconds a schema is served from the cache before it is read again.
TTL = 10.0
#: How fresh a schema must be before a missed lookup is answered with a 404.
MISS_MAX_AGE = 1.0

# Each reads as one JSON document: pooled connections load every value as text.
_RELATIONS = b"""
SELECT coalesce(json_agg(json_build_array(c.relname, a.attname,
                                          format_type(a.atttypid, a.atttypmod))
                         ORDER BY c.relname, a.attnum), '[]')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
"""
_FUNCTIONS = b"""
SELECT coalesce(json_agg(json_build_array(
    p.proname, p.proretset, t.typtype = 'c' OR p.proretset,
    coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
    array(SELECT format_type(x, NULL) FROM unnest(coalesce(p.proallargtypes,
                                                           p.proargtypes::oid[])) x))), '[]')
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_type t ON t.oid = p.prorettype
WHERE n.nspname = $1 AND p.prokind = 'f'
"""


@dataclass(frozen=True)
class Relation:
    name: str
    columns: dict[str, str]  # column -> type, in table order


@dataclass(frozen=True)
class Function:
    name: str
    returns_set: bool
    returns_rows: bool
    arguments: dict[str, str]  # input argument name -> type


@dataclass(frozen=True)
class Schema:
    name: str
    relations: dict[str, Relation]
    functions: dict[str, Function]


class Catalog:
    """Schemas as last read, per (database, schema name)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._schemas: dict[tuple[str, str], tuple[float, Schema]] = {}  # (read at, schema)
        self._lock = threading.Lock()

    def schema(
        self, conn: psycopg.Connection, database: str, name: str, max_age: float = TTL
    ) -> Schema:
        """The schema as read at most `max_age` seconds ago (a lookup that missed asks
        again with a short `max_age`: a new table is served at once, and a flood of
        unknown names costs one read per second)."""
        key = (database, name)
        cached = self._schemas.get(key)
        now = self._clock()
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        schema = read_schema(conn, name)
        with self._lock:
            self._schemas[key] = (now, schema)
        return schema


def read_schema(conn: psycopg.Connection, name: str) -> Schema:
    relations: dict[str, dict[str, str]] = {}
    for table, column, type_name in _document(conn, _RELATIONS, name):
        relations.setdefault(table, {})[column] = type_name
    functions: dict[str, Function | None] = {}
    for fname, retset, rows, names, modes, types in _document(conn, _FUNCTIONS, name):
        modes = modes or ["i"] * len(types)
        arguments = {
            arg: arg_type
            for arg, mode, arg_type in zip(names, modes, types, strict=False)
            if mode in ("i", "b", "v") and arg
        }
        # Overloaded: PostgREST picks by argument names; this stand-in refuses.
        functions[fname] = None if fname in functions else Function(fname, retset, rows, arguments)
    return Schema(
        name,
        {t: Relation(t, cols) for t, cols in relations.items()},
        {f: fn for f, fn in functions.items() if fn is not None},
    )


def _document(conn: psycopg.Connection, query: bytes, name: str) -> list:
    result = conn.pgconn.exec_params(query, [name.encode()])
    if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
        raise psycopg.errors.error_from_result(result)
    return json.loads(result.get_value(0, 0) or b"[]")
