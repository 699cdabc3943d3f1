"""Row-level security on `todos`, attacked from the user roles and the owner."""

from __future__ import annotations

import psycopg
import pytest


def add_todo(conn: psycopg.Connection, task: str = "buy milk") -> int:
    return conn.execute("INSERT INTO todos (task) VALUES (%s) RETURNING id", [task]).fetchone()[0]


def rows_of(conn: psycopg.Connection, user: str) -> int:
    return conn.execute("SELECT count(*) FROM todos WHERE user_id = %s", [user]).fetchone()[0]


def test_insert_takes_the_user_id_from_the_session(login, alice) -> None:
    conn = login(alice)
    todo = add_todo(conn)
    row = conn.execute("SELECT user_id, is_complete FROM todos WHERE id = %s", [todo]).fetchone()
    assert row == (alice, False)


def test_a_user_cannot_read_update_or_delete_another_users_rows(login, connect, alice, bob) -> None:
    todo = add_todo(login(alice))
    mallory = login(bob)
    assert mallory.execute("SELECT count(*) FROM todos WHERE id = %s", [todo]).fetchone()[0] == 0
    assert rows_of(mallory, alice) == 0
    assert mallory.execute("UPDATE todos SET task = 'pwned' WHERE id = %s", [todo]).rowcount == 0
    assert mallory.execute("DELETE FROM todos WHERE id = %s", [todo]).rowcount == 0
    task = connect("postgres").execute("SELECT task FROM todos WHERE id = %s", [todo]).fetchone()
    assert task == ("buy milk",)


def test_a_user_cannot_insert_rows_for_another_user(login, alice, bob) -> None:
    mallory = login(bob)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        mallory.execute("INSERT INTO todos (user_id, task) VALUES (%s, 'x')", [alice])


def test_a_user_cannot_give_a_row_away(login, alice, bob) -> None:
    conn = login(alice)
    todo = add_todo(conn)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        conn.execute("UPDATE todos SET user_id = %s WHERE id = %s", [bob, todo])


def test_a_user_cannot_give_rows_away_in_an_unfiltered_update(login, alice, bob) -> None:
    """No WHERE: only the UPDATE policy's WITH CHECK stands between Alice's rows and
    Bob (a WHERE reading columns would bring the SELECT policy in as well)."""
    conn = login(alice)
    add_todo(conn)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        conn.execute("UPDATE todos SET user_id = %s", [bob])


def test_without_a_session_there_is_no_row_and_no_insert(connect, login, alice) -> None:
    add_todo(login(alice))
    conn = connect("authenticated")
    assert conn.execute("SELECT count(*) FROM todos").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        add_todo(conn)


def test_anonymous_has_no_policy_so_no_rows(login, alice) -> None:
    add_todo(login(alice))
    anonymous = login(alice, role="anonymous")
    assert anonymous.execute("SELECT count(*) FROM todos").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        add_todo(anonymous)


def test_the_owner_is_subject_to_rls(connect, login, alice) -> None:
    add_todo(login(alice))
    owner = connect("neondb_owner")
    assert rows_of(owner, alice) == 0
    assert rows_of(connect("postgres"), alice) == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        owner.execute("INSERT INTO todos (user_id, task) VALUES (%s, 'x')", [alice])


def test_an_empty_task_is_refused(login, alice) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        add_todo(login(alice), task="")


def test_the_policy_reads_the_identity_once_per_statement(login, alice) -> None:
    plan = "\n".join(
        row[0]
        for row in login(alice).execute(
            "EXPLAIN (COSTS OFF) SELECT * FROM todos ORDER BY inserted_at DESC"
        )
    )
    assert "InitPlan" in plan


def test_parallel_plans_read_the_identity_in_the_leader(login, alice) -> None:
    """A parallel worker has its own pid: were auth.session() PARALLEL SAFE, a worker
    scanning with this filter would evaluate it and be refused as another backend."""
    conn = login(alice)
    add_todo(conn)
    add_todo(conn)
    for setting in (
        "debug_parallel_query = on",
        "parallel_setup_cost = 0",
        "enable_indexscan = off",
        "enable_bitmapscan = off",
    ):
        conn.execute(f"SET {setting}")
    query = "SELECT count(*) FROM todos WHERE user_id = auth.user_id()"
    assert conn.execute(query).fetchone()[0] == 2
