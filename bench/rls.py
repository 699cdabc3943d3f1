"""What row-level security and the local `auth` schema cost per query.

The per-user query of Neon's guides, run as `authenticated` with a session,
on a throwaway embedded server:

- scale: 50 todos of one user among 10 thousand rows, then among 1 million
  rows (10 thousand users), each time in the same mix of queries; an index
  scan should not care (target <= 1.2x);
- RLS: the same query as the superuser (no policies) with a literal user id,
  so the difference is the policy plus three `auth.session()` calls per
  statement (each reads the claims the hand-off verified and kept): the
  InitPlan of the policy, the index condition, and the check the planner adds
  that the two agree (target <= 1.2x). Measured twice: alone in its
  transaction, and after `auth.jwt_session_init` in the same transaction, as
  the proxy pipelines it;
- the guide's WHERE clause is redundant under RLS: without it the policy's
  InitPlan is the only verification; measured alone and after the hand-off;
- as the proxy runs it: the hand-off and the statement in one transaction,
  the statement unprepared (planning it evaluates `auth.user_id()` once more
  to estimate the index condition), against the plain query unprepared.

The session token is signed by the proxy's own code and carries the claims
of an issuer access token, so it takes the path real tokens take. Latency is
measured from the client (psycopg, prepared statements after the first
runs), median of many runs after warm-up; the sides of a comparison
alternate so drift hits them alike.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bench.report import Figure, median
from proxy.session import SessionKey
from stack import migrate, postgres

SUITE = "rls"
USERS = 10_000
MEASURED_TODOS = 50
WARMUP = 300
RUNS = 3_000
USER = "user-measured"
RLS_QUERY = "SELECT * FROM todos WHERE user_id = auth.user_id() ORDER BY inserted_at DESC"
POLICY_ONLY_QUERY = "SELECT * FROM todos ORDER BY inserted_at DESC"
PLAIN_QUERY = sql.SQL("SELECT * FROM todos WHERE user_id = {} ORDER BY inserted_at DESC").format(
    sql.Literal(USER)
)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Probe:
    """A timed query with untimed steps around it."""

    query: Callable[[], object]
    before: Callable[[], object] = _nothing
    after: Callable[[], object] = _nothing


def run() -> list[Figure]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-rls-", dir="/tmp")) / "pg"
    try:
        db = migrate.apply_local(postgres.start(data_dir))
        return _measure(db)
    finally:
        postgres.stop(data_dir, mode="immediate")
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def _measure(db: migrate.LocalDatabase) -> list[Figure]:
    with (
        psycopg.connect(db.superuser_url, autocommit=True) as admin,
        psycopg.connect(db.role_url("authenticated"), autocommit=True) as user,
    ):
        token = _session_token(db, user, USER)
        user.execute("SELECT auth.jwt_session_init(%s)", [token])

        def rls() -> object:
            return user.execute(RLS_QUERY).fetchall()

        def hand_off() -> None:
            user.execute("BEGIN")
            user.execute("SELECT auth.jwt_session_init(%s)", [token])

        def policy_only() -> object:
            return user.execute(POLICY_ONLY_QUERY).fetchall()

        def commit() -> None:
            user.execute("COMMIT")

        probes = (
            Probe(rls),
            Probe(rls, before=hand_off, after=commit),
            Probe(policy_only),
            Probe(policy_only, before=hand_off, after=commit),
            Probe(lambda: admin.execute(PLAIN_QUERY).fetchall()),
            Probe(
                lambda: user.execute(RLS_QUERY, prepare=False).fetchall(),
                before=hand_off,
                after=commit,
            ),
            Probe(lambda: admin.execute(PLAIN_QUERY, prepare=False).fetchall()),
        )
        _load(admin, rows=10_000)
        small, *_ = _alternating(*probes)
        _load(admin, rows=1_000_000)
        large, warm, policy, policy_warm, plain, proxied, unprepared = _alternating(*probes)
        for query in (RLS_QUERY, POLICY_ONLY_QUERY):
            if len(user.execute(query).fetchall()) != MEASURED_TODOS:
                raise RuntimeError("the session does not see exactly the measured user's todos")

    def figure(name: str, value: list[float], baseline_name: str, baseline: list[float]) -> Figure:
        return Figure(SUITE, name, "ms", median(value), baseline_name, median(baseline), "<= 1.2")

    no_rls = "no RLS, literal user id"
    return [
        figure("per-user query, 1M rows (RLS + session)", large, "same, 10k rows", small),
        figure("per-user query with RLS + session, 1M rows", large, no_rls, plain),
        figure("same, after the hand-off in its transaction", warm, no_rls, plain),
        figure("same without the redundant WHERE (policy only)", policy, no_rls, plain),
        figure("policy only, after the hand-off in its transaction", policy_warm, no_rls, plain),
        figure(
            "as the proxy runs it (unprepared, after the hand-off)",
            proxied,
            "no RLS, unprepared",
            unprepared,
        ),
    ]


def _load(admin: psycopg.Connection, rows: int) -> None:
    """Fill `todos` to `rows`: the measured user's 50 todos, the rest spread over USERS."""
    admin.execute("TRUNCATE todos")
    admin.execute(
        """INSERT INTO todos (user_id, task, inserted_at)
           SELECT %s, 'measured task ' || g, now() - g * interval '1 minute'
           FROM generate_series(1, %s) AS g""",
        [USER, MEASURED_TODOS],
    )
    admin.execute(
        """INSERT INTO todos (user_id, task, is_complete, inserted_at)
           SELECT 'user-' || (g %% %s), 'task ' || g, g %% 3 = 0, now() - g * interval '1 second'
           FROM generate_series(1, %s) AS g""",
        [USERS, rows - MEASURED_TODOS],
    )
    admin.execute("VACUUM ANALYZE todos")


def _session_token(db: migrate.LocalDatabase, conn: psycopg.Connection, sub: str) -> str:
    """Install a session key and sign a token for `conn`'s backend with the proxy's own code,
    carrying the claims the issuer puts in an access token."""
    key = SessionKey.generate()
    key.install(db.owner_url)
    now = int(time.time())
    claims = {
        "iss": "http://127.0.0.1:8001",
        "sub": sub,
        "aud": "todos",
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "jti": secrets.token_hex(16),
        "scope": "openid todos",
        "client_id": "todo-app",
    }
    return key.token(claims, pid=conn.info.backend_pid)


def _alternating(*probes: Probe) -> list[list[float]]:
    """Milliseconds per run of each probe's query, run in turn after a shared warm-up."""
    for _ in range(WARMUP):
        for probe in probes:
            probe.before()
            probe.query()
            probe.after()
    samples: list[list[float]] = [[] for _ in probes]
    for _ in range(RUNS):
        for probe, times in zip(probes, samples, strict=True):
            probe.before()
            start = time.perf_counter_ns()
            probe.query()
            times.append((time.perf_counter_ns() - start) / 1e6)
            probe.after()
    return samples
