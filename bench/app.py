"""The todo app's own overhead: its list page against the one proxied query behind it.

The whole stack runs as `make run` runs it (`python -m stack run` in a
temporary DATA_DIR on free ports: embedded PostgreSQL, the issuer, the proxy
and the app on granian). A demo user logs in over HTTP and adds TODOS todos.
Then, sequentially and warm, with one keep-alive connection each, the bench
alternates `GET /` (the list page: session lookup, one SQL-over-HTTP round
trip, template) with a `POST /sql` of the same list query, sent straight to
the proxy with the same access token. The difference is what the app adds
to the query it has to make; the page's `Server-Timing` header splits its own
time (`app`) from the time it waited on the proxy (`db`). `Server-Timing`
starts in `before_request`: the session cookie's decoding and re-signing and
granian itself are outside it, which `GET /healthz` (no session, no work)
bounds from below.

Profiled (py-spy on the served app, 2026-12-05), the page's own time goes to the
SQL client's side of the round trip (urllib3 since then: a `requests` Session
spent twice its CPU per query), rendering the list (two forms per todo, each
with its CSRF field and URLs) and one read of the login from SQLite. The machine
is shared: run it alone for figures worth comparing across runs.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.report import Figure, median, percentile
from stack.demo_users import DEMO_USERS

SUITE = "app"
TODOS = 20
WARMUP = 50
SAMPLES = 1000
STARTUP_TIMEOUT_S = 90.0
HTTP_TIMEOUT_S = 15
# What `Todos.list()` sends (app/todos.py), byte for byte.
LIST_QUERY = (
    "SELECT id, task, is_complete, inserted_at FROM todos WHERE user_id = auth.user_id()"
    " ORDER BY inserted_at DESC, id DESC"
)
_TIMING = re.compile(r"app;dur=([\d.]+), db;dur=([\d.]+)")
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]*)"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Stack:
    """`python -m stack run` in its own DATA_DIR; its output goes to a log file there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        app_port = _free_port()
        # The URL `make run` publishes for a loopback bind (see stack.supervisor.public_url).
        self.app_url = f"http://localhost:{app_port}"
        issuer_bind = f"127.0.0.1:{_free_port()}"
        env = os.environ | {
            "DATA_DIR": str(root),
            "ISSUER_BIND": issuer_bind,
            "ISSUER_KEYS_DIR": str(root / "keys"),
            "ISSUER_DATABASE_URL": f"sqlite:///{root / 'issuer.sqlite3'}",
            "ISSUER_DATA_DIR": str(root),
            "PROXY_PORT": str(_free_port()),
            "APP_BIND": f"127.0.0.1:{app_port}",
        }
        for name in ("ISSUER_URL", "APP_URL", "NEON_HTTP_ENDPOINT", "PROXY_JWKS_URL"):
            env.pop(name, None)  # derived from the binds above by the supervisor
        self.log = root / "stack.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stack", "run", "--demo-users"],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_up(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stack exited:\n{self.log.read_text()[-2000:]}")
            if "The stack is up" in self.log.read_text():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not come up:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Ctrl-C's path: the supervisor stops its children, then PostgreSQL."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _log_in(app_url: str, email: str, password: str) -> requests.Session:
    """Through the issuer's login page, as a browser without JavaScript would."""
    browser = requests.Session()
    page = browser.get(f"{app_url}/login", timeout=HTTP_TIMEOUT_S)
    token = _CSRF.search(page.text)
    assert token, f"no login form at {page.url}"
    done = browser.post(
        page.url,
        data={"email": email, "password": password, "csrf_token": token.group(1)},
        timeout=HTTP_TIMEOUT_S,
    )
    assert done.url == f"{app_url}/" and "Signed in as" in done.text, done.url
    return browser


def _prepare(app_url: str) -> tuple[str, dict[str, Any]]:
    """Log in, add the todos; return the session cookie and the SQL console's credentials."""
    email, password = DEMO_USERS[0]
    browser = _log_in(app_url, email, password)
    csrf = _CSRF.search(browser.get(f"{app_url}/", timeout=HTTP_TIMEOUT_S).text)
    assert csrf
    for number in range(1, TODOS + 1):
        added = browser.post(
            f"{app_url}/todos",
            data={"task": f"benchmark todo {number}", "csrf_token": csrf.group(1)},
            timeout=HTTP_TIMEOUT_S,
        )
        assert added.status_code == 200, added.status_code
    # The access token the app itself queries with (the SQL console's).
    grant = browser.post(
        f"{app_url}/sql/token", headers={"X-CSRFToken": csrf.group(1)}, timeout=HTTP_TIMEOUT_S
    )
    assert grant.status_code == 200, grant.text
    return browser.cookies["app_session"], grant.json()


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S)


def _measure(app_url: str, cookie: str, grant: dict[str, Any]) -> dict[str, list[float]]:
    """Alternate page and query, so that drift in the machine hits both alike."""
    page_conn = _connection(app_url)
    sql_conn = _connection(grant["endpoint"])
    sql_path = urlsplit(grant["endpoint"]).path
    page_headers = {"Cookie": f"app_session={cookie}"}
    sql_body = json.dumps({"query": LIST_QUERY, "params": []})
    sql_headers = {
        "Neon-Connection-String": grant["connection_string"],
        "Authorization": f"Bearer {grant['access_token']}",
        "Neon-Array-Mode": "false",
        "Neon-Raw-Text-Output": "false",
        "Content-Type": "application/json",
    }
    samples: dict[str, list[float]] = {"floor": [], "page": [], "query": [], "app": [], "db": []}
    for i in range(WARMUP + SAMPLES):
        started = time.perf_counter()
        page_conn.request("GET", "/healthz")
        response = page_conn.getresponse()
        response.read()
        floor_s = time.perf_counter() - started
        assert response.status == 200, response.status

        started = time.perf_counter()
        page_conn.request("GET", "/", headers=page_headers)
        response = page_conn.getresponse()
        body = response.read()
        page_s = time.perf_counter() - started
        assert response.status == 200 and b"benchmark todo 20" in body, response.status
        timing = _TIMING.search(response.getheader("Server-Timing", ""))
        assert timing, "no Server-Timing on the page"

        started = time.perf_counter()
        sql_conn.request("POST", sql_path, sql_body, sql_headers)
        response = sql_conn.getresponse()
        data = response.read()
        query_s = time.perf_counter() - started
        assert response.status == 200 and json.loads(data)["rowCount"] == TODOS, data[:200]

        if i >= WARMUP:
            samples["floor"].append(floor_s * 1e3)
            samples["page"].append(page_s * 1e3)
            samples["query"].append(query_s * 1e3)
            samples["app"].append(float(timing.group(1)))
            samples["db"].append(float(timing.group(2)))
    page_conn.close()
    sql_conn.close()
    return samples


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        stack = _Stack(Path(tmp))
        try:
            stack.wait_up()
            cookie, grant = _prepare(stack.app_url)
            samples = _measure(stack.app_url, cookie, grant)
        finally:
            stack.stop()

    page, query = samples["page"], samples["query"]
    query_label = "POST /sql, same query"
    return [
        Figure(SUITE, "GET / todo list page p50", "ms", median(page), query_label,
               median(query), "added <= 2 (the app's overhead)"),
        Figure(SUITE, "GET / todo list page p99", "ms", percentile(page, 99), query_label,
               percentile(query, 99), "added <= 5"),
        Figure(SUITE, "GET /healthz p50 (the app's server, no work)", "ms",
               median(samples["floor"]), query_label, median(query), "<= 1"),
        Figure(SUITE, "Server-Timing app (own time) p50", "ms", median(samples["app"]),
               "Server-Timing db (waiting on the proxy)", median(samples["db"]), "<= 1"),
        Figure(SUITE, "Server-Timing db p50", "ms", median(samples["db"]), query_label,
               median(query), "added <= 1 (the app's SQL client)"),
    ]  # fmt: skip
