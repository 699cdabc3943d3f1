"""The errors `/sql` answers with, shaped like Neon's JSON error bodies.

Every failure a client can cause becomes a `ProxyError` with a 4xx status; a
Postgres error keeps all of its diagnostic fields so drivers can show them.
Authentication and protocol errors carry `code: ""` as on Neon.
"""

from __future__ import annotations

from typing import Any

import psycopg

# Neon's error body always carries these keys (null when unknown).
_PG_FIELDS = {
    "code": "sqlstate",
    "detail": "message_detail",
    "hint": "message_hint",
    "position": "statement_position",
    "internalPosition": "internal_position",
    "internalQuery": "internal_query",
    "severity": "severity_nonlocalized",
    "where": "context",
    "table": "table_name",
    "column": "column_name",
    "schema": "schema_name",
    "dataType": "datatype_name",
    "constraint": "constraint_name",
    "file": "source_file",
    "line": "source_line",
    "routine": "source_function",
}


class ProxyError(Exception):
    """A request the proxy refuses or cannot serve, with the HTTP status to use."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        fields: dict[str, Any] = dict.fromkeys(_PG_FIELDS)
        fields["code"] = self.code
        return {"message": self.message, **fields}


class AuthError(ProxyError):
    """The bearer token or the connection string was refused; no SQL has run."""


class PayloadTooLarge(ProxyError):
    status = 413


class ResponseTooLarge(ProxyError):
    """The answer would exceed the response limit (Neon's 10 MiB)."""

    status = 507

    def __init__(self, limit: int) -> None:
        super().__init__(f"response is too large (max is {limit} bytes)")


class BackendUnavailable(ProxyError):
    """Postgres cannot be reached (down, or every pooled connection is busy)."""

    status = 503


class PostgresError(ProxyError):
    """An error raised by Postgres while running the client's SQL."""

    def __init__(self, error: psycopg.Error) -> None:
        diag = error.diag
        super().__init__(diag.message_primary or str(error), code=diag.sqlstate or "")
        self.fields = {key: getattr(diag, attr) for key, attr in _PG_FIELDS.items()}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.fields}
