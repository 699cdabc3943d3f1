"""PostgREST's URL query language, parsed into plain values (no SQL here).

`select=alias:col::type,...`, horizontal filters (`col=op.value`, `not.`, `or=(…)`,
`and=(…)`), `order=col.desc.nullslast,...`, `limit`, `offset`: the part of
PostgREST's grammar that its clients (postgrest-py, postgrest-js) send for tables
and views. Column names and casts are only checked for shape here; `compile`
checks them against the schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from proxy.data_api.errors import ApiError, bad_request

OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
             "like": "LIKE", "ilike": "ILIKE", "is": "IS", "in": "IN"}  # fmt: skip
IS_VALUES = {"null": "NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}
#: Casts a select may ask for (PostgREST accepts any type; these cover its clients' use).
CASTS = frozenset({"text", "int", "integer", "int4", "int8", "bigint", "smallint", "numeric",
                   "float8", "real", "double precision", "boolean", "bool", "json", "jsonb",
                   "date", "timestamp", "timestamptz", "uuid", "varchar"})  # fmt: skip
#: Query parameters that are not column filters.
RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict",
                      "or", "and", "not.or", "not.and"})  # fmt: skip
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
MAX_DEPTH = 8


@dataclass(frozen=True)
class SelectItem:
    column: str  # "*" for every column
    alias: str | None = None
    cast: str | None = None


@dataclass(frozen=True)
class Condition:
    column: str
    operator: str  # a key of OPERATORS
    value: str | tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class Logic:
    conjunction: str  # "AND" | "OR"
    terms: tuple[Condition | Logic, ...]
    negate: bool = False


@dataclass(frozen=True)
class OrderTerm:
    column: str
    descending: bool = False
    nulls: str | None = None  # "FIRST" | "LAST"


@dataclass
class ReadQuery:
    select: tuple[SelectItem, ...] = (SelectItem("*"),)
    where: Logic = field(default_factory=lambda: Logic("AND", ()))
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset: int = 0
    columns: tuple[str, ...] | None = None


def parse(params: list[tuple[str, str]]) -> ReadQuery:
    """The whole query string (repeated keys allowed, in order)."""
    query = ReadQuery()
    terms: list[Condition | Logic] = []
    for key, value in params:
        if key == "select":
            query.select = parse_select(value)
        elif key == "order":
            query.order = parse_order(value)
        elif key in ("limit", "offset"):
            number = _natural(key, value)
            if key == "limit":
                query.limit = number
            else:
                query.offset = number
        elif key == "columns":
            query.columns = tuple(_name(_unquote(c.strip()), "columns") for c in value.split(","))
        elif key in ("or", "and", "not.or", "not.and"):
            negate, conjunction = key.startswith("not."), key.removeprefix("not.").upper()
            terms.append(Logic(conjunction, _logic_terms(_inside_parens(value, key), 0), negate))
        elif key == "on_conflict":
            raise bad_request("PGRST100", "on_conflict (upserts) is not supported here")
        else:
            terms.append(parse_condition(_name(key, "filter"), value))
    query.where = Logic("AND", tuple(terms))
    return query


def parse_select(text: str) -> tuple[SelectItem, ...]:
    items = []
    for raw in _split(text, ","):
        part = raw.strip()
        if not part:
            raise bad_request("PGRST100", "select has an empty item")
        if "(" in part or "->" in part:
            raise bad_request(
                "PGRST100", f"select {part!r}: embedded resources and JSON paths are not supported"
            )
        alias = None
        if ":" in part.split("::", 1)[0]:
            alias, part = part.split(":", 1)
            alias = _name(alias.strip(), "select alias")
        cast = None
        if "::" in part:
            part, cast = part.split("::", 1)
            cast = cast.strip().lower()
            if cast not in CASTS:
                raise bad_request("PGRST100", f"select cannot cast to {cast!r}")
        column = part.strip()
        if column != "*":
            column = _name(column, "select")
        elif alias or cast:
            raise bad_request("PGRST100", "'*' cannot be renamed or cast")
        items.append(SelectItem(column, alias, cast))
    return tuple(items)


def parse_order(text: str) -> tuple[OrderTerm, ...]:
    terms = []
    for raw in text.split(","):
        column, *modifiers = raw.strip().split(".")
        term = OrderTerm(_name(column, "order"))
        for modifier in modifiers:
            if modifier in ("asc", "desc"):
                term = OrderTerm(term.column, modifier == "desc", term.nulls)
            elif modifier in ("nullsfirst", "nullslast"):
                term = OrderTerm(term.column, term.descending, modifier[5:].upper())
            else:
                raise bad_request("PGRST100", f"order: unknown modifier {modifier!r}")
        terms.append(term)
    return tuple(terms)


def parse_condition(column: str, text: str) -> Condition:
    """`[not.]op.value` for `column`."""
    negate = text.startswith("not.")
    if negate:
        text = text[4:]
    operator, dot, value = text.partition(".")
    if not dot or operator not in OPERATORS:
        raise bad_request(
            "PGRST100",
            f"failed to parse filter ({text[:40]})",
            f"unknown operator {operator!r}: use one of {', '.join(OPERATORS)}",
        )
    if operator == "is":
        if value.lower() not in IS_VALUES:
            raise bad_request("PGRST100", f"is.{value[:20]}: use null, true, false or unknown")
        return Condition(column, operator, value.lower(), negate)
    if operator == "in":
        return Condition(column, operator, tuple(_list_values(_inside_parens(value, "in"))), negate)
    return Condition(column, operator, value, negate)


def _logic_terms(text: str, depth: int) -> tuple[Condition | Logic, ...]:
    if depth > MAX_DEPTH:
        raise bad_request("PGRST100", "logic trees nest too deep")
    terms: list[Condition | Logic] = []
    for raw in _split(text, ","):
        part = raw.strip()
        negate = part.startswith("not.")
        body = part[4:] if negate else part
        for conjunction in ("and", "or"):
            if body.startswith(conjunction + "("):
                inner = _inside_parens(body[len(conjunction) :], conjunction)
                terms.append(Logic(conjunction.upper(), _logic_terms(inner, depth + 1), negate))
                break
        else:
            column, dot, rest = part.partition(".")
            if not dot:
                raise bad_request("PGRST100", f"failed to parse logic tree ({part[:40]})")
            terms.append(parse_condition(_name(column, "filter"), _unquote(rest)))
    if not terms:
        raise bad_request("PGRST100", "empty logic tree")
    return tuple(terms)


def _split(text: str, separator: str) -> list[str]:
    """Split at `separator` outside double quotes and parentheses."""
    parts, depth, quoted, current = [], 0, False, []
    escaped = False
    for char in text:
        if escaped:  # `\x` inside quotes: x, whatever it is
            current.append(char)
            escaped = False
            continue
        if quoted and char == "\\":
            escaped = True
            current.append(char)
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                raise bad_request("PGRST100", "unbalanced parentheses")
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted or depth:
        raise bad_request("PGRST100", "unbalanced quotes or parentheses")
    parts.append("".join(current))
    return parts


def _list_values(text: str) -> list[str]:
    return [_unquote(part.strip()) for part in _split(text, ",")] if text.strip() else []


def _unquote(value: str) -> str:
    """A PostgREST value: `"…"` may hold `,` `.` `(` `)`; `\\"` and `\\\\` escape inside."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _inside_parens(text: str, what: str) -> str:
    if not (text.startswith("(") and text.endswith(")")):
        raise bad_request("PGRST100", f"{what}: expected (…), got {text[:40]!r}")
    return text[1:-1]


def _name(text: str, where: str) -> str:
    if not _NAME.fullmatch(text) or len(text) > 63:
        raise ApiError(400, "PGRST100", f"{where}: {text[:40]!r} is not a column name")
    return text


def _natural(key: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise bad_request("PGRST100", f"{key} must be a non-negative integer")
    return int(value)
