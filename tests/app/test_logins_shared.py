"""The todo app on many hosts: refreshes of one login are serialised through the
app's own store. On PostgreSQL two stores with nothing else in common (separate
lock directories, as on two hosts) still refresh a stale login once; on SQLite
(one host) the file lock does it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

import servicedb
from app.logins import IssuerUnreachable, LoginStore
from app.store import MIGRATIONS

PARALLEL = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    else:
        pg_server = request.getfixturevalue("pg_server")
        name = f"app_shared_{time.time_ns()}"
        with psycopg.connect(pg_server.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = pg_server.url(dbname=name)
    engine = servicedb.engine_for(url)
    MIGRATIONS.upgrade(engine)
    yield engine
    engine.dispose()


def hosts(engine: Engine, tmp_path: Path) -> list[LoginStore]:
    """Two app hosts' stores: on PostgreSQL nothing on disk in common."""
    shared = engine.dialect.name == "sqlite"
    return [
        LoginStore(engine, tmp_path / ("locks" if shared else f"locks-{i}"), 3600, 60)
        for i in range(2)
    ]


def stale_login(store: LoginStore) -> str:
    token = {"access_token": "at-0", "expires_in": 1, "refresh_token": "rt-0"}
    return store.create(token, {"sub": "user-1", "email": "u@example.com"})


def test_parallel_refreshes_across_hosts_reach_the_issuer_once(
    store_engine: Engine, tmp_path: Path
) -> None:
    stores = hosts(store_engine, tmp_path)
    login = stale_login(stores[0])
    presented: list[str] = []

    def issuer_refresh(refresh_token: str) -> Mapping[str, Any]:
        presented.append(refresh_token)
        time.sleep(0.3)  # the issuer is slow: every other request must wait, not refresh
        n = len(presented)
        return {"access_token": f"at-{n}", "expires_in": 900, "refresh_token": f"rt-{n}"}

    start = threading.Barrier(PARALLEL)
    tokens: list[str] = []

    def request(i: int) -> None:
        start.wait()
        tokens.append(stores[i % 2].fresh(login, issuer_refresh).access_token)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert presented == ["rt-0"], "one refresh, with the token as stored"
    assert tokens == ["at-1"] * PARALLEL
    assert stores[1].get(login).refresh_token == "rt-1"


def test_a_refresh_stuck_on_another_host_is_a_503_not_a_second_refresh(
    store_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.logins.REFRESH_LOCK_TIMEOUT_S", 0.5)
    stores = hosts(store_engine, tmp_path)
    login = stale_login(stores[0])
    inside = threading.Event()
    release = threading.Event()

    def slow(refresh_token: str) -> Mapping[str, Any]:
        inside.set()
        release.wait(10)
        return {"access_token": "at-1", "expires_in": 900, "refresh_token": "rt-1"}

    first = threading.Thread(target=lambda: stores[0].fresh(login, slow))
    first.start()
    assert inside.wait(10)
    try:
        with pytest.raises(IssuerUnreachable):
            stores[1].fresh(login, lambda _: pytest.fail("a second refresh was sent"))
    finally:
        release.set()
        first.join(10)
    assert stores[1].get(login).access_token == "at-1"
