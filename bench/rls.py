"""What row-level security and the local `auth` schema cost per query.

The per-user query of Neon's guides, run as `authenticated` with a session the
way the proxy leaves it, on a throwaway embedded server:

- scale: 50 todos of one user among 10 thousand rows, then among 1 million
  rows (10 thousand users); an index scan should not care (target <= 1.2x);
- RLS: the same query as the superuser (no policies) with a literal user id,
  so the difference is the policy plus three HMAC-verified `auth.session()`
  calls per statement (target <= 1.2x): the InitPlan of the policy, the index
  condition, and the check the planner adds that the two agree;
- the guide's WHERE clause is redundant under RLS: without it the policy's
  InitPlan is the only verification (same baseline, same target).

Latency is measured from the client (psycopg, prepared statements after the
first runs), median of many runs after warm-up; the two sides of a comparison
alternate so drift hits both alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.report import Figure, median
from stack import migrate, postgres

SUITE = "rls"
USERS = 10_000
MEASURED_TODOS = 50
WARMUP = 300
RUNS = 3_000
USER = "user-measured"
RLS_QUERY = "SELECT * FROM todos WHERE user_id = auth.user_id() ORDER BY inserted_at DESC"
POLICY_ONLY_QUERY = "SELECT * FROM todos ORDER BY inserted_at DESC"
PLAIN_QUERY = "SELECT * FROM todos WHERE user_id = %s ORDER BY inserted_at DESC"


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
        _session(db, USER) as user,
    ):
        _load(admin, rows=10_000)
        small = _latencies(lambda: user.execute(RLS_QUERY).fetchall())
        _load(admin, rows=1_000_000)
        rls, policy_only, plain = _alternating(
            lambda: user.execute(RLS_QUERY).fetchall(),
            lambda: user.execute(POLICY_ONLY_QUERY).fetchall(),
            lambda: admin.execute(PLAIN_QUERY, [USER]).fetchall(),
        )
        for query in (RLS_QUERY, POLICY_ONLY_QUERY):
            if len(user.execute(query).fetchall()) != MEASURED_TODOS:
                raise RuntimeError("the session does not see exactly the measured user's todos")
    return [
        Figure(
            suite=SUITE,
            name="per-user query, 1M rows (RLS + session)",
            unit="ms",
            value=median(rls),
            baseline_name="same, 10k rows",
            baseline=median(small),
            target="<= 1.2",
        ),
        Figure(
            suite=SUITE,
            name="per-user query with RLS + session, 1M rows",
            unit="ms",
            value=median(rls),
            baseline_name="no RLS, literal user id",
            baseline=median(plain),
            target="<= 1.2",
        ),
        Figure(
            suite=SUITE,
            name="same without the redundant WHERE (policy only), 1M rows",
            unit="ms",
            value=median(policy_only),
            baseline_name="no RLS, literal user id",
            baseline=median(plain),
            target="<= 1.2",
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


def _session(db: migrate.LocalDatabase, sub: str) -> psycopg.Connection:
    """An `authenticated` connection with a session, set up as the proxy does it."""
    kid, secret = "bench", secrets.token_bytes(32)
    with psycopg.connect(db.owner_url, autocommit=True) as owner:
        owner.execute("SELECT auth_private.install_session_key(%s::text, %s::bytea)", [kid, secret])
    conn = psycopg.connect(db.role_url("authenticated"), autocommit=True)
    claims = {"sub": sub, "exp": int(time.time()) + 3600, "pid": conn.info.backend_pid}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode())
        for part in ({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    conn.execute("SELECT auth.jwt_session_init(%s)", [f"{signing_input}.{_b64url(mac)}"])
    return conn


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _latencies(query: Callable[[], object]) -> list[float]:
    return _alternating(query)[0]


def _alternating(*queries: Callable[[], object]) -> list[list[float]]:
    """Milliseconds per run of each query, run in turn after a shared warm-up."""
    for _ in range(WARMUP):
        for query in queries:
            query()
    samples: list[list[float]] = [[] for _ in queries]
    for _ in range(RUNS):
        for query, times in zip(queries, samples, strict=True):
            start = time.perf_counter_ns()
            query()
            times.append((time.perf_counter_ns() - start) / 1e6)
    return samples
