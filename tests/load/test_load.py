"""Many users at once against `python -m stack run`: signing up and logging in
through the issuer's pages, refreshing (access tokens live 4 s), and doing
todo CRUD, for a bounded time. Afterwards the database must hold exactly what
each user saw acknowledged, nobody may have seen anyone else's todo, nothing
may have answered 5xx or shown a traceback, and everyone must still be
logged in (no refresh-token family burned by a racing refresh).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import servicedb
from issuer.accounts import users
from tests.load.conftest import ACCESS_TOKEN_TTL, VISITORS, has_account
from tests.load.visitor import HTTP_TIMEOUT, Ledger, Registry, Traffic, Visitor
from tests.support.mail import Inbox
from tests.support.supervised_stack import SupervisedStack

pytestmark = pytest.mark.load

SECONDS = float(os.environ.get("LOAD_SECONDS", "20"))


def _recording(visitor: Visitor, work: Callable[[], None]) -> None:
    try:
        work()
    except Exception as error:  # a timeout or refused connection is a finding: record it
        visitor.problems.append(f"{type(error).__name__}: {error}")


def _drive(visitor: Visitor, deadline: float) -> None:
    """Sign in, then act in the first tab while a second tab reloads, until `deadline`."""
    if not visitor.sign_in():
        return
    second_tab = threading.Thread(
        target=_recording, args=(visitor, lambda: visitor.reload_in_second_tab(deadline))
    )
    second_tab.start()
    try:
        # After a first problem the ledger may be off: further steps would only add noise.
        while time.monotonic() < deadline and not visitor.problems:
            visitor.step()
    finally:
        second_tab.join(timeout=max(0.0, deadline - time.monotonic()) + HTTP_TIMEOUT + 5)
    if second_tab.is_alive():
        visitor.problems.append("the second tab hung past its request timeout")


def _stored_todos(stack: SupervisedStack, visitors: list[Visitor]) -> dict[str, Ledger]:
    """Every row of `todos`, read as the superuser (past RLS), by the owner's email."""
    engine = servicedb.engine_for(stack.issuer_database_url)
    try:
        accounts = {v.email: users.find_user(engine, v.email) for v in visitors}
        emails = {user.id: email for email, user in accounts.items() if user is not None}
    finally:
        engine.dispose()
    stored: dict[str, Ledger] = {}
    with psycopg.connect(stack.database_url(), connect_timeout=10) as conn:
        rows = conn.execute("SELECT user_id, id, task, is_complete FROM todos").fetchall()
    for user_id, todo_id, task, done in rows:
        stored.setdefault(emails.get(user_id, f"unknown user {user_id}"), {})[todo_id] = (
            task,
            done,
        )
    return stored


def _audit(output: str) -> list[dict[str, Any]]:
    """The issuer's audit lines (one JSON object each) among the stack's output."""
    events = []
    for line in output.splitlines():
        if line.startswith('{"ts"'):
            events.append(json.loads(line))
    return events


def test_many_users_sign_in_refresh_and_crud_at_once(
    production_stack: SupervisedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic, registry = Traffic(), Registry()
    visitors = [
        Visitor(
            i,
            production_stack.app_url,
            traffic,
            registry,
            has_account=has_account(i),
            inbox=Inbox(production_stack.maildir),
        )
        for i in range(VISITORS)
    ]
    started = time.monotonic()
    deadline = started + SECONDS
    threads = [
        threading.Thread(target=_recording, args=(v, lambda v=v: _drive(v, deadline)))
        for v in visitors
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 3 * HTTP_TIMEOUT + 5)
    assert not any(t.is_alive() for t in threads), "a visitor hung past every request timeout"
    elapsed = time.monotonic() - started

    finals = {v.email: v.final_list() for v in visitors}
    stored = _stored_todos(production_stack, visitors)
    events = _audit(production_stack.output())
    subs = {e["sub"] for e in events if e["event"] == "oauth.token_issued"}
    refreshes = Counter(
        e["sub"]
        for e in events
        if e.get("grant") == "refresh_token" and e["event"] == "oauth.token_issued"
    )
    reuses = [e for e in events if e["event"] in ("oauth.refresh_reuse", "oauth.code_reuse")]
    actions = sum((v.actions for v in visitors), Counter())
    requests_made = sum(traffic.statuses.values())
    with capsys.disabled():
        print(
            f"\nload: {VISITORS} users for {elapsed:.1f} s, {requests_made} HTTP requests "
            f"({requests_made / elapsed:.0f}/s), p50 {traffic.percentile_ms(50):.1f} ms, "
            f"p99 {traffic.percentile_ms(99):.1f} ms; {sum(refreshes.values())} token refreshes "
            f"(access tokens live {ACCESS_TOKEN_TTL} s); "
            f"statuses {dict(sorted(traffic.statuses.items()))}\n"
            f"load: actions {dict(sorted(actions.items()))}, second-tab reloads "
            f"{sum(v.second_tab_reloads for v in visitors)}; "
            f"{sum(map(len, stored.values()))} todos stored"
        )

    assert traffic.server_errors == [], "5xx or a traceback reached a user"
    problems = {v.email: v.problems for v in visitors if v.problems}
    assert problems == {}, "a visitor saw something other than what it did"
    leaks = {v.email: v.leaks for v in visitors if v.leaks}
    assert leaks == {}, "a visitor saw another user's todo"
    assert reuses == [], "a refresh token or code was presented twice (a family was burned)"
    for visitor in visitors:
        assert finals[visitor.email] == visitor.ledger, f"{visitor.email} no longer sees its todos"
        assert stored.pop(visitor.email, {}) == visitor.ledger, (
            f"{visitor.email}: lost or extra writes"
        )
    assert stored == {}, "rows that no visitor wrote"
    assert len(subs) == VISITORS
    assert len(refreshes) == VISITORS, "every session outlived its access token and refreshed"
    assert actions["add"] > VISITORS, "too little traffic for the run to mean anything"
    assert production_stack.stop() == 0, "Ctrl-C still stops the stack cleanly"
    output = production_stack.output()
    assert "Traceback" not in output, output[-5000:]
    assert "WORKER TIMEOUT" not in output, output[-5000:]
