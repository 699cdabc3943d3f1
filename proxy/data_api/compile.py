"""PostgREST requests as SQL: one statement each, every value a bind parameter.

Identifiers come only from the schema cache (`catalog`) and are quoted; every value
from the request is a text parameter whose type Postgres infers from the column it
is compared with (or the function argument it is cast to). Each statement returns
one row: the response body as JSON text (NULL for `return=minimal`) and the number
of rows it touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from proxy.data_api.catalog import Function, Relation, Schema
from proxy.data_api.errors import ApiError, bad_request
from proxy.data_api.query import IS_VALUES, OPERATORS, Condition, Logic, ReadQuery, SelectItem


@dataclass
class Statement:
    sql: str
    params: list[str | None] = field(default_factory=list)

    def bind(self, value: str | None) -> str:
        self.params.append(value)
        return f"${len(self.params)}"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def relation(schema: Schema, name: str) -> Relation:
    found = schema.relations.get(name)
    if found is None:
        raise ApiError(
            404,
            "PGRST205",
            f"Could not find the table '{schema.name}.{name}' in the schema cache",
        )
    return found


def function(schema: Schema, name: str) -> Function:
    found = schema.functions.get(name)
    if found is None:
        raise ApiError(
            404,
            "PGRST202",
            f"Could not find the function {schema.name}.{name} in the schema cache",
        )
    return found


def read(schema: Schema, table: Relation, query: ReadQuery, count: bool) -> list[Statement]:
    """SELECT; with `count` also the number of rows the filters match."""
    statement = Statement("")
    source = f"{_qualified(schema, table)} AS _t"
    where = _where(statement, table, query.where)
    order = ", ".join(
        f"_t.{ident(_column(table, term.column))} {'DESC' if term.descending else 'ASC'}"
        + (f" NULLS {term.nulls}" if term.nulls else "")
        for term in query.order
    )
    inner = f"SELECT {_select_list(table, query.select)} FROM {source} WHERE {where}"
    if order:
        inner += f" ORDER BY {order}"
    if query.limit is not None:
        inner += f" LIMIT {query.limit}"
    if query.offset:
        inner += f" OFFSET {query.offset}"
    statement.sql = f"SELECT coalesce(json_agg(_r), '[]')::text, count(*) FROM ({inner}) _r"
    statements = [statement]
    if count:
        counting = Statement("")
        counting.sql = (
            f"SELECT NULL, count(*) FROM {source} WHERE {_where(counting, table, query.where)}"
        )
        statements.append(counting)
    return statements


def insert(
    schema: Schema, table: Relation, query: ReadQuery, body: Any, returning: bool
) -> Statement:
    rows = body if isinstance(body, list) else [body]
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise bad_request("PGRST102", "the body must be a JSON object or an array of objects")
    names = query.columns or tuple(dict.fromkeys(key for row in rows for key in row))
    if not names:
        raise bad_request("PGRST102", "nothing to insert: the objects have no keys")
    columns = ", ".join(ident(_column(table, name)) for name in names)
    statement = Statement("")
    payload = statement.bind(json.dumps(rows))
    mutation = (
        f"INSERT INTO {_qualified(schema, table)} ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{_qualified(schema, table)}, {payload}::json) "
        "RETURNING *"
    )
    statement.sql = _returning(mutation, table, query.select, returning)
    return statement


def update(
    schema: Schema, table: Relation, query: ReadQuery, body: Any, returning: bool
) -> Statement:
    if not isinstance(body, dict) or not body:
        raise bad_request("PGRST102", "the body must be a JSON object of the columns to set")
    statement = Statement("")
    payload = statement.bind(json.dumps(body))
    assignments = ", ".join(f"{ident(_column(table, name))} = _p.{ident(name)}" for name in body)
    target = _qualified(schema, table)
    mutation = (
        f"UPDATE {target} AS _t SET {assignments} "
        f"FROM json_populate_record(NULL::{target}, {payload}::json) AS _p "
        f"WHERE {_where(statement, table, query.where)} RETURNING _t.*"
    )
    statement.sql = _returning(mutation, table, query.select, returning)
    return statement


def delete(schema: Schema, table: Relation, query: ReadQuery, returning: bool) -> Statement:
    statement = Statement("")
    mutation = (
        f"DELETE FROM {_qualified(schema, table)} AS _t "
        f"WHERE {_where(statement, table, query.where)} RETURNING _t.*"
    )
    statement.sql = _returning(mutation, table, query.select, returning)
    return statement


def call(schema: Schema, fn: Function, arguments: dict[str, Any]) -> Statement:
    """`schema.fn(arg => $n::type, …)`: rows as a JSON array, a scalar as its JSON."""
    unknown = sorted(set(arguments) - set(fn.arguments))
    if unknown:
        raise ApiError(
            404,
            "PGRST202",
            f"Could not find the function {schema.name}.{fn.name}"
            f"({', '.join(sorted(arguments))}) in the schema cache",
            f"unknown argument(s): {', '.join(unknown)}",
        )
    statement = Statement("")
    named = ", ".join(
        f"{ident(name)} => {statement.bind(_text(value))}::{fn.arguments[name]}"
        for name, value in arguments.items()
    )
    target = f"{ident(schema.name)}.{ident(fn.name)}({named})"
    if fn.returns_rows:
        statement.sql = f"SELECT coalesce(json_agg(_r), '[]')::text, count(*) FROM {target} AS _r"
    else:
        statement.sql = f"SELECT to_json({target})::text, 1"
    return statement


def _returning(mutation: str, table: Relation, select: tuple[SelectItem, ...], body: bool) -> str:
    if not body:
        return f"WITH _m AS ({mutation}) SELECT NULL, count(*) FROM _m"
    return (
        f"WITH _m AS ({mutation}) SELECT coalesce(json_agg(_r), '[]')::text, count(*) "
        f"FROM (SELECT {_select_list(table, select)} FROM _m AS _t) _r"
    )


def _select_list(table: Relation, items: tuple[SelectItem, ...]) -> str:
    parts = []
    for item in items:
        if item.column == "*":
            parts.append("_t.*")
            continue
        column = ident(_column(table, item.column))
        expression = f"(_t.{column})::{item.cast}" if item.cast else f"_t.{column}"
        parts.append(f"{expression} AS {ident(item.alias or item.column)}")
    return ", ".join(parts)


def _where(statement: Statement, table: Relation, logic: Logic) -> str:
    if not logic.terms:
        return "TRUE"
    parts = [
        _where(statement, table, term)
        if isinstance(term, Logic)
        else _condition(statement, table, term)
        for term in logic.terms
    ]
    joined = "(" + f" {logic.conjunction} ".join(parts) + ")"
    return f"NOT {joined}" if logic.negate else joined


def _condition(statement: Statement, table: Relation, condition: Condition) -> str:
    column = f"_t.{ident(_column(table, condition.column))}"
    if condition.operator == "is":
        sql = f"{column} IS {IS_VALUES[str(condition.value)]}"
    elif condition.operator == "in":
        values = condition.value if isinstance(condition.value, tuple) else ()
        sql = f"{column} = ANY({statement.bind(_array_literal(values))})"
    else:
        value = str(condition.value)
        if condition.operator in ("like", "ilike"):
            value = value.replace("*", "%")
        sql = f"{column} {OPERATORS[condition.operator]} {statement.bind(value)}"
    return f"NOT ({sql})" if condition.negate else f"({sql})"


def _array_literal(values: tuple[str, ...]) -> str:
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


def _column(table: Relation, name: str) -> str:
    if name not in table.columns:
        raise ApiError(
            400,
            "42703",
            f"column {table.name}.{name} does not exist",
            hint="the schema cache lists " + ", ".join(table.columns),
        )
    return name


def _qualified(schema: Schema, table: Relation) -> str:
    return f"{ident(schema.name)}.{ident(table.name)}"


def _text(value: Any) -> str | None:
    """A JSON value as the text Postgres parses for the argument's type."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)
