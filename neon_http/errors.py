"""What the client raises: one base class, Postgres' error fields, or no answer at all."""

from __future__ import annotations

from typing import Any


class NeonHTTPError(Exception):
    """Base class of everything this client raises."""


class NeonDbError(NeonHTTPError):
    """The endpoint answered with an error body: from Postgres (`code` is its SQLSTATE)
    or from the proxy itself (`code` is empty: authentication, protocol, limits).

    Postgres' fields are attributes (None when absent), named as psycopg names them;
    `fields` keeps the body as sent.
    """

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.fields = body
        self.message: str = str(body.get("message") or f"HTTP {status}")
        self.code: str = body.get("code") or ""
        self.detail: str | None = body.get("detail")
        self.hint: str | None = body.get("hint")
        self.severity: str | None = body.get("severity")
        self.where: str | None = body.get("where")
        self.schema: str | None = body.get("schema")
        self.table: str | None = body.get("table")
        self.column: str | None = body.get("column")
        self.data_type: str | None = body.get("dataType")
        self.constraint: str | None = body.get("constraint")
        position = body.get("position")
        self.position: int | None = int(position) if position else None
        super().__init__(f"{self.message} (HTTP {status}{', ' + self.code if self.code else ''})")


class EndpointUnreachable(NeonHTTPError):
    """No HTTP answer at all: wrong endpoint, proxy down, network or TLS failure, timeout."""
