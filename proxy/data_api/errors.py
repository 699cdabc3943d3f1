"""The Data API's errors, in PostgREST's shape and with its status codes.

Every failure a client can cause is an `ApiError`: `{"code", "message",
"details", "hint"}` with a 4xx status. Postgres' own errors keep their SQLSTATE as
`code`; errors of the API layer use PostgREST's `PGRST…` codes.
"""

from __future__ import annotations

from typing import Any

import psycopg

# SQLSTATE (or its class) -> HTTP status, as PostgREST maps them
# (docs.postgrest.org, "Errors": "HTTP status codes").
_BY_CODE = {
    "23503": 409,  # foreign_key_violation
    "23505": 409,  # unique_violation
    "25006": 405,  # read_only_sql_transaction
    "42883": 404,  # undefined_function
    "42P01": 404,  # undefined_table
    "42703": 400,  # undefined_column
    "42501": 403,  # insufficient_privilege (401 when anonymous, see below)
    "P0001": 400,  # raise_exception
    "53400": 500,  # configuration_limit_exceeded
}
_BY_CLASS = {"08": 503, "09": 500, "0L": 403, "0P": 403, "22": 400, "23": 400, "28": 403,
             "2D": 500, "38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500,
             "55": 500, "57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 500, "XX": 500,
             "42": 400}  # fmt: skip


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.hint = details, hint

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details,
                "hint": self.hint}  # fmt: skip


def from_postgres(error: psycopg.Error, anonymous: bool) -> ApiError:
    """A Postgres error as PostgREST answers it."""
    diag = error.diag
    code = diag.sqlstate or ""
    status = _BY_CODE.get(code) or _BY_CLASS.get(code[:2], 400)
    if code == "42501" and anonymous:
        status = 401
    return ApiError(
        status, code, diag.message_primary or str(error), diag.message_detail, diag.message_hint
    )


def bad_request(code: str, message: str, details: str | None = None) -> ApiError:
    return ApiError(400, code, message, details)
