"""Neon's SQL-over-HTTP wire format: what a `/sql` request says, and how rows are written.

Parsing is strict (anything unexpected is a 400 before any SQL runs) and follows
Neon's proxy: header flags are true only for the exact value `true`, parameters
travel as text, results are read from Postgres in text format and typed by OID.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import orjson
from psycopg.postgres import types as pg_types

from proxy.errors import AuthError, ProxyError
from proxy.pgtext import storable

CONNECTION_STRING = "Neon-Connection-String"
RAW_TEXT_OUTPUT = "Neon-Raw-Text-Output"
ARRAY_MODE = "Neon-Array-Mode"
ISOLATION_LEVEL = "Neon-Batch-Isolation-Level"
READ_ONLY = "Neon-Batch-Read-Only"
DEFERRABLE = "Neon-Batch-Deferrable"

ISOLATION_LEVELS = {
    "Serializable": "SERIALIZABLE",
    "ReadUncommitted": "READ UNCOMMITTED",
    "ReadCommitted": "READ COMMITTED",
    "RepeatableRead": "REPEATABLE READ",
}


@dataclass(frozen=True)
class Target:
    """Who runs the SQL, and where: the connection string's user and database.

    The host names the endpoint (on Neon its first label is the endpoint id);
    locally there is one backend, so it is checked against the hosts the proxy
    serves but never used to route.
    """

    role: str
    database: str
    host: str = field(default="", compare=False)


@dataclass(frozen=True)
class Statement:
    query: str
    params: list[str | None]
    array_mode: bool | None


@dataclass(frozen=True)
class Options:
    raw_text: bool
    array_mode: bool
    isolation: str | None
    read_only: bool
    deferrable: bool


@dataclass(frozen=True)
class SqlRequest:
    statements: list[Statement]
    batch: bool
    options: Options


def parse_target(headers: Mapping[str, str]) -> Target:
    value = headers.get(CONNECTION_STRING)
    if not value:
        raise AuthError("invalid header: neon-connection-string")
    try:
        url = urllib.parse.urlsplit(value)
        hostname = url.hostname
    except ValueError as error:
        raise AuthError(f"invalid connection string: {error}") from None
    if url.scheme not in ("postgres", "postgresql"):
        raise AuthError("incorrect scheme")
    database = urllib.parse.unquote(url.path.removeprefix("/").split("/")[0])
    if not database:
        raise AuthError("missing database name")
    if "\0" in database:
        raise AuthError("invalid database name")
    role = urllib.parse.unquote(url.username or "")
    if not role:
        raise AuthError("missing username")
    if "\0" in role:
        raise AuthError("invalid username")
    if not hostname:
        raise AuthError("missing hostname")
    return Target(role=role, database=database, host=hostname)


def parse_bearer(headers: Mapping[str, str]) -> str:
    value = headers.get("Authorization")
    if value is None or not value.startswith("Bearer "):
        raise AuthError(
            "missing authentication credentials: required authorization bearer token in JWT format"
        )
    return value.removeprefix("Bearer ")


def parse_options(headers: Mapping[str, str]) -> Options:
    level = headers.get(ISOLATION_LEVEL)
    if level is not None and level not in ISOLATION_LEVELS:
        raise ProxyError("invalid isolation level")
    return Options(
        raw_text=headers.get(RAW_TEXT_OUTPUT) == "true",
        array_mode=headers.get(ARRAY_MODE) == "true",
        isolation=ISOLATION_LEVELS[level] if level else None,
        read_only=headers.get(READ_ONLY) == "true",
        deferrable=headers.get(DEFERRABLE) == "true",
    )


def parse_body(body: bytes, options: Options) -> SqlRequest:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise _bad_body(str(error) or "nested too deeply") from None
    if not isinstance(payload, dict):
        raise _bad_body("expected a JSON object")
    if "query" in payload:
        return SqlRequest([_statement(payload)], batch=False, options=options)
    queries = payload.get("queries")
    if not isinstance(queries, list):
        raise _bad_body("expected a `query` string or a `queries` array")
    return SqlRequest([_statement(q) for q in queries], batch=True, options=options)


def _statement(item: Any) -> Statement:
    if not isinstance(item, dict) or not isinstance(item.get("query"), str):
        raise _bad_body("each query must be an object with a `query` string")
    params = item.get("params", [])
    if params is None:
        params = []
    if not isinstance(params, list):
        raise _bad_body("`params` must be an array")
    array_mode = item.get("arrayMode")
    if array_mode is not None and not isinstance(array_mode, bool):
        raise _bad_body("`arrayMode` must be a boolean")
    try:
        texts = [param_text(p) for p in params]
    except (ValueError, RecursionError):
        raise _bad_body("a parameter cannot be converted to text") from None
    for name, text in (
        ("the query", item["query"]),
        *((f"parameter ${i}", t) for i, t in enumerate(texts, 1)),
    ):
        if text is None:
            continue
        if not storable(text):
            raise _bad_body(f"{name} is not valid text (NUL or unpaired surrogate)")
    return Statement(item["query"], texts, array_mode)


def _bad_body(reason: str) -> ProxyError:
    return ProxyError(f"could not parse the HTTP request body: {reason}")


def param_text(value: Any) -> str | None:
    """A JSON parameter as the text Postgres receives (None is SQL NULL)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _array_literal(value)
    return _json_text(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _array_literal(items: list[Any]) -> str:
    return "{" + ",".join(_array_element(item) for item in items) + "}"


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return _array_literal(value)
    text = value if isinstance(value, str) else _json_text(value)
    if isinstance(value, bool | int | float):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- results ---------------------------------------------------------------------------

Converter = Callable[[str], Any]


def _float(text: str) -> Any:
    number = float(text)
    return number if math.isfinite(number) else text


_SCALARS: dict[int, Converter] = {
    pg_types["bool"].oid: "t".__eq__,  # a C call per value (see `_typed`)
    pg_types["int2"].oid: int,
    pg_types["int4"].oid: int,
    pg_types["float4"].oid: _float,
    pg_types["float8"].oid: _float,
    # Postgres writes valid JSON: it goes into the response as it is, as on Neon, so
    # no depth or number length a parser would refuse can stop a response.
    pg_types["json"].oid: orjson.Fragment,
    pg_types["jsonb"].oid: orjson.Fragment,
}

_ARRAY_ELEMENTS: dict[int, int] = {info.array_oid: info.oid for info in pg_types if info.array_oid}


def _text(text: str) -> str:
    return text


def converter(oid: int, raw_text: bool) -> Converter:
    """How a non-null text value of type `oid` is written into the JSON row."""
    if raw_text:
        return _text
    if oid in _ARRAY_ELEMENTS:
        element = _SCALARS.get(_ARRAY_ELEMENTS[oid], _text)
        return lambda text: parse_array(text, element)
    return _SCALARS.get(oid, _text)


def parse_array(text: str, element: Converter) -> list[Any]:
    """Parse Postgres' array output (`{1,NULL,"a b"}`, nested, with bounds) into lists.

    Postgres quotes every element that holds a delimiter, quote, backslash or
    whitespace, so unquoted elements are taken verbatim.
    """
    if text.startswith("["):
        text = text[text.index("=") + 1 :]
    stack: list[list[Any]] = []
    result: list[Any] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "{":
            stack.append([])
            i += 1
        elif char == "}":
            done = stack.pop()
            if stack:
                stack[-1].append(done)
            else:
                result = done
            i += 1
        elif char == ",":
            i += 1
        elif char == '"':
            i += 1
            chunk: list[str] = []
            while text[i] != '"':
                if text[i] == "\\":
                    i += 1
                chunk.append(text[i])
                i += 1
            stack[-1].append(element("".join(chunk)))
            i += 1
        else:
            start = i
            while text[i] not in ",}":
                i += 1
            word = text[start:i]
            stack[-1].append(None if word == "NULL" else element(word))
    return result


@dataclass(frozen=True)
class Field:
    name: str
    type_oid: int
    table_oid: int
    column: int
    size: int
    modifier: int

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataTypeID": self.type_oid,
            "tableID": self.table_oid,
            "columnID": self.column,
            "dataTypeSize": self.size,
            "dataTypeModifier": self.modifier,
            "format": "text",
        }


def command_and_count(status: str) -> tuple[str, int | None]:
    """Split a command tag (`INSERT 0 3`, `SELECT 50`, `CREATE TABLE`) as Neon does."""
    words = status.split(" ")
    count_word = words[2] if words[0] == "INSERT" and len(words) > 2 else None
    if words[0] != "INSERT" and len(words) > 1:
        count_word = words[1]
    count = int(count_word) if count_word and count_word.isdigit() else None
    return words[0], count


def _typed(
    rows: Sequence[Sequence[str | None]], typed: Sequence[tuple[int, Converter]]
) -> Iterable[Sequence[Any]]:
    """The rows with their typed columns converted, column by column: a column without
    NULLs is one `map` (the loop in C, about a third less time for the todo list's 50
    rows than converting row by row)."""
    columns: list[Iterable[Any]] = list(zip(*rows, strict=False))
    for i, convert in typed:
        column = columns[i]
        if None in column:  # type: ignore[operator]
            columns[i] = [None if value is None else convert(value) for value in column]
        else:
            columns[i] = map(convert, column)
    return zip(*columns, strict=False)


def result_json(
    fields: Sequence[Field],
    rows: Sequence[Sequence[str | None]],
    status: str,
    raw_text: bool,
    array_mode: bool,
) -> dict[str, Any]:
    # Text columns pass through untouched; only rows with typed columns are copied.
    typed = [
        (i, convert)
        for i, field in enumerate(fields)
        if (convert := converter(field.type_oid, raw_text)) is not _text
    ]
    values: Iterable[Sequence[Any]] = _typed(rows, typed) if typed and rows else rows
    if array_mode:
        out: list[Any] = list(values)
    else:
        names = [field.name for field in fields]
        # Every row of a result has one value per field. The loops run in C, and
        # without zip's `strict=` keyword, which alone cost a third of their time.
        out = list(map(dict, map(zip, repeat(names), values)))
    command, count = command_and_count(status)
    return {
        "command": command,
        "rowCount": count,
        "rows": out,
        "fields": [field.json() for field in fields],
        "rowAsArray": array_mode,
    }
