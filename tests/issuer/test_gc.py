"""Garbage collection and the fleet's timer: what expired goes, what can still be
used (or still proves a theft) stays, and a scheduled job runs once per period
however many issuers tick. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from issuer import gc, schedule
from issuer.accounts.models import login_failures
from issuer.db import secret_digest
from issuer.keys import KeyRing
from issuer.oauth.codes import codes_table
from issuer.oauth.refresh_tokens import refresh_tokens_table
from tests.issuer.oauth_flows import get_code, log_in, make_user, redeem, refresh, register

DAY = 24 * 3600


@pytest.fixture
def app(make_issuer_app: Callable[..., Flask], keys_dir: Path) -> Flask:
    KeyRing(keys_dir).init()
    return make_issuer_app()


def count(app: Flask, table) -> int:
    with app.extensions["db"].connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def shift(app: Flask, table, column: str, seconds: float, **where: str) -> None:
    """Move a time column into the past (as if the rows were that much older)."""
    with app.extensions["db"].begin() as conn:
        statement = update(table).values({column: table.c[column] - seconds})
        for name, value in where.items():
            statement = statement.where(table.c[name] == value)
        conn.execute(statement)


def test_expired_rows_go_and_live_families_keep_their_reuse_detection(app: Flask) -> None:
    make_user(app)
    browser = app.test_client()
    log_in(browser, "alice@example.com")
    spa = register(app, public=True, first_party=True)[0]
    # An old family, long expired: its code and tokens go.
    code, verifier = get_code(browser, spa)
    old = redeem(browser, spa, code, verifier).json["refresh_token"]
    refresh(browser, spa, old)
    shift(app, codes_table, "expires_at", 40 * DAY)
    shift(app, refresh_tokens_table, "expires_at", 40 * DAY)
    # A live family: rotated twice, its rotated tokens still within their lifetime.
    code, verifier = get_code(browser, spa)
    first = redeem(browser, spa, code, verifier).json["refresh_token"]
    second = refresh(browser, spa, first).json["refresh_token"]
    third = refresh(browser, spa, second).json["refresh_token"]
    with app.extensions["db"].begin() as conn:
        conn.execute(
            login_failures.insert(),
            [
                {"scope": "account", "key": "old", "at": time.time() - 2 * DAY},
                {"scope": "account", "key": "new", "at": time.time()},
            ],
        )

    collected = gc.collect(app.extensions["db"], retention=DAY)

    assert collected["authorization codes"] == 1
    assert collected["refresh tokens"] == 2
    assert collected["throttle entries"] == 1
    assert count(app, codes_table) == 1
    assert count(app, refresh_tokens_table) == 3
    assert count(app, login_failures) == 1
    # Presenting `first` again (rotated, outside the reuse window: its successor is
    # used) still revokes the live family: its row was kept.
    assert refresh(browser, spa, first).json["error"] == "invalid_grant"
    assert refresh(browser, spa, third).json["error"] == "invalid_grant"
    # The old family's tokens were refused before and are refused now.
    assert refresh(browser, spa, old).json["error"] == "invalid_grant"


def test_rows_inside_the_retention_stay(app: Flask) -> None:
    make_user(app)
    browser = app.test_client()
    log_in(browser, "alice@example.com")
    spa = register(app, public=True, first_party=True)[0]
    code, verifier = get_code(browser, spa)
    token = redeem(browser, spa, code, verifier).json["refresh_token"]
    shift(app, codes_table, "expires_at", DAY / 2)
    shift(
        app,
        refresh_tokens_table,
        "expires_at",
        app.config["ISSUER"].refresh_token_ttl + DAY / 2,  # expired half a day ago
        token_digest=secret_digest(token),
    )
    collected = gc.collect(app.extensions["db"], retention=DAY)
    assert collected["authorization codes"] == 0 and collected["refresh tokens"] == 0


def test_python_m_issuer_gc_says_what_it_deleted(tmp_path: Path, keys_dir: Path) -> None:
    KeyRing(keys_dir).init()
    env = {
        **os.environ,
        "ISSUER_DATA_DIR": str(tmp_path / "data"),
        "ISSUER_KEYS_DIR": str(keys_dir),
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "issuer", "gc"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "refresh tokens: 0 deleted" in done.stdout
    assert '"event":"gc.run"' in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "issuer", "gc"],
        env={**env, "ISSUER_GC_RETENTION": "-1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: ISSUER_GC_RETENTION must be at least 0")


def test_a_scheduled_job_runs_once_per_period_however_many_claim_it(app: Flask) -> None:
    """Eight processes' timers ticking at the same moment: one run."""
    engine = app.extensions["db"]
    start = threading.Barrier(8)
    wins: list[bool] = []

    def tick() -> None:
        start.wait()
        wins.append(schedule.claim(engine, "gc", period=3600))

    threads = [threading.Thread(target=tick) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(wins) == [False] * 7 + [True]
    # Nobody runs it again inside the period; once it is over, exactly one does.
    assert not schedule.claim(engine, "gc", period=3600)
    later = time.time() + 3601
    assert [schedule.claim(engine, "gc", 3600, now=later) for _ in range(3)] == [
        True,
        False,
        False,
    ]
    assert schedule.next_run(engine, "gc") == pytest.approx(later + 3600)


def test_the_scheduler_runs_gc_and_survives_a_failing_job(app: Flask) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("boom")

    jobs = [
        schedule.Job("broken", 3600, broken),
        *gc.jobs(app),
    ]
    scheduler = schedule.Scheduler(app.extensions["db"], jobs, tick=0.05)
    with app.extensions["db"].begin() as conn:
        conn.execute(
            login_failures.insert(), {"scope": "account", "key": "k", "at": time.time() - 2 * DAY}
        )
    scheduler.start()
    deadline = time.monotonic() + 10
    while count(app, login_failures) and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.stop()
    assert ran == ["broken"], "claimed once, not retried inside its period"
    assert count(app, login_failures) == 0, "gc ran after the broken job"


def test_no_scheduled_gc_when_the_interval_is_zero(make_issuer_app, keys_dir: Path) -> None:
    KeyRing(keys_dir).init()
    assert gc.jobs(make_issuer_app(gc_interval=0)) == []
