"""`NeonHTTP`: queries and transactions over Neon's `POST /sql`, with a user's JWT."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import urllib3

from neon_http.errors import EndpointUnreachable, NeonDbError

Isolation = Literal["ReadUncommitted", "ReadCommitted", "RepeatableRead", "Serializable"]
ISOLATION_LEVELS = ("ReadUncommitted", "ReadCommitted", "RepeatableRead", "Serializable")

Query = str | tuple[str, Sequence[Any]]


@dataclass(frozen=True)
class Result:
    rows: list[Any]
    fields: list[dict[str, Any]]
    command: str
    row_count: int | None
    row_as_array: bool

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Result:
        return cls(
            rows=body["rows"],
            fields=body["fields"],
            command=body["command"],
            row_count=body.get("rowCount"),
            row_as_array=body["rowAsArray"],
        )


def _header_safe(value: str, what: str) -> str:
    """`value`, if it can go in a header as it is: printable ASCII. Control characters
    would end or fold the header (an injected one, or an error whose message, logged,
    repeats the value); the error names what, never the value, which may be a secret."""
    if not (value.isascii() and value.isprintable()):
        raise ValueError(f"{what} contains characters a header cannot carry")
    return value


def derive_endpoint(connection_string: str, *, with_token: bool) -> str:
    """The official driver's default: `apiauth.` (with a JWT) or `api.` replaces the first label."""
    host = urllib.parse.urlsplit(connection_string).hostname
    if not host:
        raise ValueError("the connection string has no host")
    prefix = "apiauth" if with_token else "api"
    rest = host.split(".", 1)[1] if "." in host else host
    return f"https://{prefix}.{rest}/sql"


class NeonHTTP:
    """One connection string (role and database) and one bearer token, or a callable
    that returns the current one (refreshed tokens); `endpoint` overrides the derived
    one (else `NEON_HTTP_ENDPOINT`, else `derive_endpoint`).

    `pool` keeps connections alive across clients (a `urllib3.ProxyManager` for an
    HTTP proxy, `ca_certs=` for a private CA); `on_round_trip` is told each round
    trip's seconds (the app's `Server-Timing`). Requests are never retried (a
    statement may have run) and redirects are not followed (the token stays put).
    """

    def __init__(
        self,
        connection_string: str,
        *,
        auth_token: str | Callable[[], str] | None = None,
        endpoint: str | None = None,
        timeout: float = 30.0,
        pool: urllib3.PoolManager | None = None,
        on_round_trip: Callable[[float], None] | None = None,
    ) -> None:
        self.connection_string = connection_string
        self.endpoint = (
            endpoint
            or os.environ.get("NEON_HTTP_ENDPOINT")
            or derive_endpoint(connection_string, with_token=auth_token is not None)
        )
        self._auth_token = auth_token
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._pool = pool or urllib3.PoolManager()
        self._on_round_trip = on_round_trip

    def query(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        *,
        array_mode: bool = False,
        raw_text: bool = False,
    ) -> Result:
        """One statement; rows are dicts (`array_mode`: lists) of typed values (`raw_text`:
        every value as Postgres' text)."""
        body = {"query": sql, "params": list(params or [])}
        headers = self._headers(array_mode=array_mode, raw_text=raw_text)
        return Result.from_json(self._post(body, headers))

    def transaction(
        self,
        queries: Sequence[Query],
        *,
        isolation: Isolation | None = None,
        read_only: bool = False,
        deferrable: bool = False,
        array_mode: bool = False,
        raw_text: bool = False,
    ) -> list[Result]:
        """Run `queries` in one transaction; the first error rolls back all of them."""
        if isolation is not None and isolation not in ISOLATION_LEVELS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATION_LEVELS)}")
        statements = []
        for item in queries:
            sql, params = (item, ()) if isinstance(item, str) else item
            statements.append({"query": sql, "params": list(params)})
        headers = self._headers(array_mode=array_mode, raw_text=raw_text)
        if isolation:
            headers["Neon-Batch-Isolation-Level"] = isolation
        if read_only:
            headers["Neon-Batch-Read-Only"] = "true"
        if deferrable:
            headers["Neon-Batch-Deferrable"] = "true"
        body = self._post({"queries": statements}, headers)
        return [Result.from_json(result) for result in body["results"]]

    def close(self) -> None:
        self._pool.clear()

    def _headers(self, *, array_mode: bool, raw_text: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Neon-Connection-String": self.connection_string,
            "Neon-Array-Mode": "true" if array_mode else "false",
            "Neon-Raw-Text-Output": "true" if raw_text else "false",
        }
        token = self._auth_token() if callable(self._auth_token) else self._auth_token
        if token is not None:
            headers["Authorization"] = f"Bearer {_header_safe(token, 'the auth token')}"
        _header_safe(self.connection_string, "the connection string")
        return headers

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        data = json.dumps(body, allow_nan=False).encode()
        started = time.perf_counter()
        try:
            response = self._pool.request(
                "POST", self.endpoint, body=data, headers=headers,
                timeout=self._timeout, retries=False, redirect=False,
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as error:
            raise EndpointUnreachable(f"cannot reach {self.endpoint}: {error}") from None
        finally:
            if self._on_round_trip is not None:
                self._on_round_trip(time.perf_counter() - started)
        try:
            payload = json.loads(response.data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            snippet = response.data[:200].decode(errors="replace")
            raise NeonDbError(response.status, {"message": snippet or response.reason or ""})
        if response.status != 200:
            raise NeonDbError(response.status, payload)
        return payload
