"""Todos through Neon's Data API (PostgREST), with Supabase's postgrest-py.

The same rows, pages and errors as over SQL (`app.todos`), and the same rule:
no ownership checks here, Row-Level Security is the authorization. The Data API
runs each request as the token's `role` (`authenticated`) with its claims, so
the policies' `auth.user_id()` is the logged-in user and a todo they hide is
simply not found.

postgrest-py never says which HTTP status an error came with; a response hook
keeps it for the request, because the status is what separates a refused
token (401) from a refused statement. Retries are off: a database that does not
answer is the user's "try again" page, not seconds of silent waiting.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from flask import g
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError

from app.todos import MAX_ID, Todo, clean_task
from neon_http import EndpointUnreachable

_COLUMNS = "id,task,is_complete,inserted_at"
# A flip is read-then-write over REST; a row changed between the two is read again.
_FLIP_ATTEMPTS = 3

_local = threading.local()


class DataApiError(Exception):
    """The Data API answered with an error: PostgREST's `code` (a SQLSTATE or a
    `PGRST…` code) and message, and the HTTP status it came with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(f"{message} (HTTP {status}, {code or 'no code'})")


def _on_request(_request: httpx.Request) -> None:
    _local.started = time.perf_counter()


def _on_response(response: httpx.Response) -> None:
    _local.status = response.status_code
    g.db_seconds = g.get("db_seconds", 0.0) + time.perf_counter() - _local.started


def _http(timeout: float) -> httpx.Client:
    """One keep-alive client per thread, as `app.neon` keeps one session."""
    client = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client(
            timeout=timeout,
            event_hooks={"request": [_on_request], "response": [_on_response]},
        )
        _local.client = client
    return client


def client(url: str, access_token: str, timeout: float) -> SyncPostgrestClient:
    return SyncPostgrestClient(
        url.rstrip("/"),
        headers={"Authorization": f"Bearer {access_token}"},
        http_client=_http(timeout),
        retry_enabled=False,
    )


def _run(query: Any) -> Any:
    """`query.execute()`, with failures as `DataApiError` or `EndpointUnreachable`."""
    _local.status = 0
    try:
        return query.execute()
    except APIError as error:
        raise DataApiError(_local.status, error.code or "", error.message or "") from None
    except httpx.TransportError as error:
        raise EndpointUnreachable(f"the Data API did not answer: {error}") from None


class DataApiTodos:
    """The current user's todos; `api` carries their access token."""

    def __init__(self, api: SyncPostgrestClient) -> None:
        self.api = api

    def _table(self) -> Any:
        return self.api.table("todos")

    def list(self) -> list[Todo]:
        query = (
            self._table().select(_COLUMNS).order("inserted_at", desc=True).order("id", desc=True)
        )
        return [Todo.from_row(row) for row in _run(query).data]

    def get(self, todo_id: int) -> Todo | None:
        if not 0 < todo_id <= MAX_ID:
            return None
        rows = _run(self._table().select(_COLUMNS).eq("id", todo_id)).data
        return Todo.from_row(rows[0]) if rows else None

    def add(self, task: str) -> Todo:
        rows = _run(self._table().insert({"task": clean_task(task)})).data
        return Todo.from_row(rows[0])

    def set_complete(self, todo_id: int, done: bool) -> Todo | None:
        return self._update(todo_id, {"is_complete": done})

    def flip(self, todo_id: int) -> Todo | None:
        """Done becomes not done and back. PostgREST has no `SET x = NOT x`, so the
        write is conditional on the value just read: a concurrent flip is not undone."""
        for _ in range(_FLIP_ATTEMPTS):
            todo = self.get(todo_id)
            if todo is None:
                return None
            rows = _run(
                self._table()
                .update({"is_complete": not todo.is_complete})
                .eq("id", todo_id)
                .eq("is_complete", todo.is_complete)
            ).data
            if rows:
                return Todo.from_row(rows[0])
        return self.get(todo_id)

    def rename(self, todo_id: int, task: str) -> Todo | None:
        return self._update(todo_id, {"task": clean_task(task)})

    def delete(self, todo_id: int) -> bool:
        if not 0 < todo_id <= MAX_ID:
            return False
        return bool(_run(self._table().delete().eq("id", todo_id)).data)

    def _update(self, todo_id: int, values: dict[str, object]) -> Todo | None:
        if not 0 < todo_id <= MAX_ID:
            return None
        rows = _run(self._table().update(values).eq("id", todo_id)).data
        return Todo.from_row(rows[0]) if rows else None


def database_view(api: SyncPostgrestClient) -> dict[str, Any]:
    """`public.whoami()` over RPC: the role and verified claims the database sees."""
    return _run(api.rpc("whoami", {})).data
