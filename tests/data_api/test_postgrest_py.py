"""Supabase's Python PostgREST client against the local Data API: CRUD under RLS."""

from __future__ import annotations

import uuid

import pytest
from postgrest.exceptions import APIError

from tests.data_api.conftest import Client


def user() -> str:
    return f"rest-{uuid.uuid4().hex[:10]}"


def test_crud_as_two_users_each_sees_and_changes_only_their_rows(rest: Client) -> None:
    alice_id, bob_id = user(), user()
    alice, bob = rest(alice_id), rest(bob_id)
    created = alice.table("todos").insert({"task": "alice 1"}).execute().data
    assert created[0]["task"] == "alice 1" and created[0]["user_id"] == alice_id
    alice.table("todos").insert([{"task": "alice 2"}, {"task": "alice 3"}]).execute()
    bob.table("todos").insert({"task": "bob 1"}).execute()

    mine = alice.table("todos").select("id, task").order("id").execute().data
    assert [row["task"] for row in mine] == ["alice 1", "alice 2", "alice 3"]
    assert [row["task"] for row in bob.table("todos").select("*").execute().data] == ["bob 1"]

    updated = (
        alice.table("todos").update({"is_complete": True}).eq("task", "alice 2").execute().data
    )
    assert [row["is_complete"] for row in updated] == [True]
    # Bob's filter names Alice's row: RLS hides it, nothing changes.
    assert bob.table("todos").update({"task": "pwned"}).eq("id", mine[0]["id"]).execute().data == []
    assert bob.table("todos").delete().eq("id", mine[0]["id"]).execute().data == []
    gone = alice.table("todos").delete().eq("task", "alice 3").execute().data
    assert [row["task"] for row in gone] == ["alice 3"]
    left = alice.table("todos").select("task, is_complete").order("task").execute().data
    assert left == [
        {"task": "alice 1", "is_complete": False},
        {"task": "alice 2", "is_complete": True},
    ]


def test_counts_ranges_ordering_and_filters(rest: Client) -> None:
    me = rest(user())
    me.table("todos").insert([{"task": f"task {n:02d}", "is_complete": n % 3 == 0}
                               for n in range(12)]).execute()  # fmt: skip
    page = (
        me.table("todos").select("task", count="exact").order("task", desc=True).range(2, 4)
    ).execute()
    assert page.count == 12
    assert [row["task"] for row in page.data] == ["task 09", "task 08", "task 07"]
    done = me.table("todos").select("task").eq("is_complete", True).order("task").execute().data
    assert [row["task"] for row in done] == ["task 00", "task 03", "task 06", "task 09"]
    picked = me.table("todos").select("task").in_("task", ["task 01", "task 05", "nope"])
    assert sorted(row["task"] for row in picked.execute().data) == ["task 01", "task 05"]
    assert len(me.table("todos").select("id").like("task", "task 1*").execute().data) == 2
    assert len(me.table("todos").select("id").ilike("task", "TASK 0*").execute().data) == 10
    assert len(me.table("todos").select("id").gte("task", "task 10").execute().data) == 2
    assert len(me.table("todos").select("id").neq("task", "task 00").execute().data) == 11
    assert len(me.table("todos").select("id").not_.eq("is_complete", True).execute().data) == 8
    either = me.table("todos").select("task").or_("task.eq.task 02,task.eq.task 11").execute()
    assert sorted(row["task"] for row in either.data) == ["task 02", "task 11"]
    assert me.table("todos").select("id").is_("is_complete", "null").execute().data == []
    renamed = me.table("todos").select("label:task, done:is_complete").limit(1).execute().data
    assert set(renamed[0]) == {"label", "done"}
    cast = me.table("todos").select("id::text").limit(1).execute().data
    assert isinstance(cast[0]["id"], str)
    single = me.table("todos").select("task").eq("task", "task 04").single().execute().data
    assert single == {"task": "task 04"}
    with pytest.raises(APIError) as many:
        me.table("todos").select("task").single().execute()
    assert many.value.code == "PGRST116"


def test_errors_come_in_postgrest_shapes(rest: Client) -> None:
    me = rest(user())
    with pytest.raises(APIError) as table:
        me.table("nosuchtable").select("*").execute()
    assert table.value.code == "PGRST205"
    with pytest.raises(APIError) as column:
        me.table("todos").select("nosuchcolumn").execute()
    assert column.value.code == "42703"
    with pytest.raises(APIError) as check:
        me.table("todos").insert({"task": ""}).execute()
    assert check.value.code == "23514"
    with pytest.raises(APIError) as owner:
        me.table("todos").insert({"task": "x", "user_id": "someone else"}).execute()
    assert owner.value.code == "42501"
