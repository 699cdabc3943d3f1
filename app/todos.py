"""Todos, read and written as the logged-in user through Neon's SQL over HTTP
(`app.data_api` does the same through Neon's Data API).

There are no ownership checks here on purpose: the database's Row-Level
Security is the authorization. The queries still say `user_id =
auth.user_id()`, as Neon's guides recommend, so that the planner uses the
(user_id, inserted_at) index; a todo the policies hide simply is not found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from neon_http import NeonHTTP

MAX_TASK_LENGTH = 500

# Postgres ids are bigint: anything larger cannot name a row (and would make
# Postgres answer 22003 instead of "not found").
MAX_ID = 2**63 - 1

_COLUMNS = "id, task, is_complete, inserted_at"

_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class InvalidTask(ValueError):
    """The text of a todo is empty or too long; the message says which."""


@dataclass(frozen=True)
class Todo:
    id: int
    task: str
    is_complete: bool
    inserted_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Todo:
        return cls(int(row["id"]), row["task"], bool(row["is_complete"]), row["inserted_at"])


def clean_task(raw: str | None) -> str:
    task = (raw or "").strip()
    if not task:
        raise InvalidTask("A todo needs some text.")
    if len(task) > MAX_TASK_LENGTH:
        raise InvalidTask(f"A todo can be at most {MAX_TASK_LENGTH} characters long.")
    if _UNSTORABLE.search(task):
        # Postgres text cannot hold NUL, and JSON cannot carry lone surrogates.
        raise InvalidTask("A todo cannot contain control characters.")
    return task


class Todos(Protocol):
    """The current user's todos, whichever path reaches them. A todo that is not
    theirs (or does not exist) is None / False, never an error."""

    def list(self) -> list[Todo]: ...
    def get(self, todo_id: int) -> Todo | None: ...
    def add(self, task: str) -> Todo: ...
    def set_complete(self, todo_id: int, done: bool) -> Todo | None: ...
    def flip(self, todo_id: int) -> Todo | None: ...
    def rename(self, todo_id: int, task: str) -> Todo | None: ...
    def delete(self, todo_id: int) -> bool: ...


class SqlTodos:
    """The current user's todos over SQL; `db` carries their access token."""

    def __init__(self, db: NeonHTTP) -> None:
        self.db = db

    def list(self) -> list[Todo]:
        result = self.db.query(
            f"SELECT {_COLUMNS} FROM todos WHERE user_id = auth.user_id()"
            " ORDER BY inserted_at DESC, id DESC"
        )
        return [Todo.from_row(row) for row in result.rows]

    def get(self, todo_id: int) -> Todo | None:
        if not 0 < todo_id <= MAX_ID:
            return None
        result = self.db.query(
            f"SELECT {_COLUMNS} FROM todos WHERE id = $1 AND user_id = auth.user_id()",
            [todo_id],
        )
        return Todo.from_row(result.rows[0]) if result.rows else None

    def add(self, task: str) -> Todo:
        result = self.db.query(
            f"INSERT INTO todos (task, user_id) VALUES ($1, auth.user_id()) RETURNING {_COLUMNS}",
            [clean_task(task)],
        )
        return Todo.from_row(result.rows[0])

    def set_complete(self, todo_id: int, done: bool) -> Todo | None:
        return self._update(todo_id, "is_complete = $2", done)

    def flip(self, todo_id: int) -> Todo | None:
        """Done becomes not done and back, in one statement (no read first)."""
        return self._update(todo_id, "is_complete = NOT is_complete")

    def rename(self, todo_id: int, task: str) -> Todo | None:
        return self._update(todo_id, "task = $2", clean_task(task))

    def delete(self, todo_id: int) -> bool:
        if not 0 < todo_id <= MAX_ID:
            return False
        result = self.db.query(
            "DELETE FROM todos WHERE id = $1 AND user_id = auth.user_id()", [todo_id]
        )
        return bool(result.row_count)

    def _update(self, todo_id: int, assignment: str, *values: object) -> Todo | None:
        if not 0 < todo_id <= MAX_ID:
            return None
        result = self.db.query(
            f"UPDATE todos SET {assignment} WHERE id = $1 AND user_id = auth.user_id()"
            f" RETURNING {_COLUMNS}",
            [todo_id, *values],
        )
        return Todo.from_row(result.rows[0]) if result.rows else None


def database_view(db: NeonHTTP) -> dict[str, Any]:
    """What the database itself knows about this request (`public.whoami()`): the
    role it runs as and the claims `pg_session_jwt` (or the local compat schema) verified."""
    return db.query("SELECT public.whoami() AS seen").rows[0]["seen"]
