"""`POST /rpc/<function>`: functions in the exposed schema, run as the token's role."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from postgrest.exceptions import APIError

from proxy.data_api.catalog import MISS_MAX_AGE
from stack.migrate import LocalDatabase
from tests.data_api.conftest import Client

FUNCTIONS = """
CREATE OR REPLACE FUNCTION public.my_todo_count() RETURNS bigint
    LANGUAGE sql STABLE AS 'SELECT count(*) FROM public.todos';
CREATE OR REPLACE FUNCTION public.todos_matching(pattern text, done boolean DEFAULT NULL)
    RETURNS SETOF public.todos LANGUAGE sql STABLE
    AS 'SELECT * FROM public.todos WHERE task LIKE pattern AND (done IS NULL OR is_complete = done)';
"""


@pytest.fixture(scope="module")
def functions(neon_db: LocalDatabase) -> Iterator[None]:
    """Two invoker's-rights functions (RLS applies inside), as the owner creates them."""
    with psycopg.connect(neon_db.owner_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(FUNCTIONS)
    time.sleep(MISS_MAX_AGE)  # a name the cache misses is looked up again after this
    yield
    with psycopg.connect(neon_db.owner_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            "DROP FUNCTION public.my_todo_count(); DROP FUNCTION public.todos_matching(text, boolean)"
        )


def test_functions_run_as_the_caller_under_rls(functions: None, rest: Client) -> None:
    alice, bob = rest(f"rpc-{uuid.uuid4().hex[:8]}"), rest(f"rpc-{uuid.uuid4().hex[:8]}")
    alice.table("todos").insert([{"task": "a1"}, {"task": "a2", "is_complete": True}]).execute()
    bob.table("todos").insert({"task": "b1"}).execute()
    assert alice.rpc("my_todo_count", {}).execute().data == 2
    assert bob.rpc("my_todo_count", {}).execute().data == 1
    rows = alice.rpc("todos_matching", {"pattern": "a%"}).execute().data
    assert sorted(row["task"] for row in rows) == ["a1", "a2"]
    done = alice.rpc("todos_matching", {"pattern": "a%", "done": True}).execute().data
    assert [row["task"] for row in done] == ["a2"]
    assert bob.rpc("todos_matching", {"pattern": "a%"}).execute().data == []


def test_unknown_functions_and_arguments_are_404(functions: None, rest: Client) -> None:
    me = rest(f"rpc-{uuid.uuid4().hex[:8]}")
    with pytest.raises(APIError) as unknown:
        me.rpc("no_such_function", {}).execute()
    assert unknown.value.code == "PGRST202"
    with pytest.raises(APIError) as argument:
        me.rpc("todos_matching", {"pattern": "a%", "extra": 1}).execute()
    assert argument.value.code == "PGRST202"
    with pytest.raises(APIError) as typed:
        me.rpc("todos_matching", {"pattern": "a%", "done": "maybe"}).execute()
    assert typed.value.code == "22P02"
