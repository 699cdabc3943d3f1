"""The real services as separate processes: the issuer on gunicorn, the proxy, the CLIs.

Each server runs in its own process group (master and workers), so a test can
SIGKILL the whole server at once, as a crash or the OOM killer would. Every
wait has a deadline; `Deployment.close()` kills whatever is still running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from issuer.db import engine_for
from issuer.keys import REFRESH_INTERVAL, KeyRing, KeyState, Manifest
from issuer.keys.store import TEMP_PREFIX
from issuer.oauth import clients
from issuer.oauth.clients import Registration
from stack.migrate import LocalDatabase
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
HTTP_TIMEOUT = 10
CLI_TIMEOUT = 60
START_TIMEOUT = 30
CONNECTION = "postgresql://authenticated@localhost/neondb"

# Neon's proxy durations are divided by this in the proxy under test (see scaled_proxy.py).
TIME_SCALE = 100
# An issuer process notices a key-ring change made by another process within this.
RING_REFRESH = REFRESH_INTERVAL
# The issuer's access log: path, status, the ETag sent, and who asked.
ACCESS_LOG_FORMAT = '%(U)s %(s)s %({etag}o)s "%(a)s"'
PROXY_USER_AGENT = "neon-proxy-local"


class Service:
    """A server process group started from `argv`, its output in `log_path`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log: Path):
        self.name, self.port, self.log_path = name, port, log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited at start:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise AssertionError(
            f"{self.name} did not listen within {START_TIMEOUT} s:\n{self.output()}"
        )

    def kill(self) -> None:
        """SIGKILL the master and every worker at once; wait until the group is gone."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._wait_group_gone()

    def stop(self) -> None:
        """A graceful stop (SIGTERM), escalated to SIGKILL after 5 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        self.kill()

    def _wait_group_gone(self) -> None:
        # Workers are reparented when the master dies; the group outlives it briefly.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        raise AssertionError(f"{self.name}'s process group survived SIGKILL")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Deployment:
    """Issuer, proxy and their settings in one temporary directory, over one database."""

    root: Path
    database: LocalDatabase
    token_ttl: int = 9  # ISSUER_ACCESS_TOKEN_TTL: 900 s / TIME_SCALE
    proxy_workers: int = 2
    proxy_threads: int = 4
    # Serve the JWKS from a static copy (ISSUER_JWKS_STATIC_DIR) on a server of its
    # own, as the README advises, instead of from the issuer.
    static_jwks: bool = False
    issuer_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    static_port: int = field(default_factory=free_port)
    issuer: Service | None = None
    proxy: Service | None = None
    static: Service | None = None

    @property
    def issuer_url(self) -> str:
        return f"http://127.0.0.1:{self.issuer_port}"

    @property
    def sql_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}/sql"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def jwks_url(self) -> str:
        """Where the proxy fetches the JWKS: the issuer, or the static copy's server."""
        if self.static_jwks:
            return f"http://127.0.0.1:{self.static_port}/jwks.json"
        return f"{self.issuer_url}/.well-known/jwks.json"

    @property
    def access_log(self) -> Path:
        return self.root / "issuer-access.log"

    @property
    def env(self) -> dict[str, str]:
        server = self.database.server
        return dict(
            os.environ,
            ISSUER_URL=self.issuer_url,
            ISSUER_BIND=f"127.0.0.1:{self.issuer_port}",
            ISSUER_WORKERS="2",
            ISSUER_THREADS="4",
            ISSUER_KEYS_DIR=str(self.keys_dir),
            ISSUER_DATA_DIR=str(self.root / "data"),
            ISSUER_DATABASE_URL=f"sqlite:///{self.root / 'issuer.sqlite3'}",
            ISSUER_ACCESS_TOKEN_TTL=str(self.token_ttl),
            ISSUER_LEEWAY="1",  # 30 s / TIME_SCALE, rounded up to whole seconds
            # Advisory only: Neon's proxy, like ours, keeps its own schedule.
            ISSUER_JWKS_MAX_AGE=str(300 // TIME_SCALE),
            PROXY_HOST="127.0.0.1",
            PROXY_PORT=str(self.proxy_port),
            PROXY_WORKERS=str(self.proxy_workers),
            PROXY_THREADS=str(self.proxy_threads),
            PROXY_DATABASE_HOST=str(server.socket_dir),
            PROXY_DATABASE_PORT=str(server.port),
            PROXY_ADMIN_URL=self.database.owner_url,
            PROXY_JWKS_URL=self.jwks_url,
            RESILIENCE_TIME_SCALE=str(TIME_SCALE),
            **({"ISSUER_JWKS_STATIC_DIR": str(self.root / "public")} if self.static_jwks else {}),
        )

    # Processes.

    def start_issuer(self) -> Service:
        argv = [GUNICORN, "-c", "python:issuer.gunicorn_conf"]
        argv += ["--access-logfile", str(self.access_log), "--access-logformat", ACCESS_LOG_FORMAT]
        self.issuer = Service("issuer", argv, self.env, self.issuer_port, self.root / "issuer.log")
        return self.issuer

    def start_proxy(self) -> Service:
        argv = [sys.executable, "-m", "tests.resilience.scaled_proxy"]
        self.proxy = Service("proxy", argv, self.env, self.proxy_port, self.root / "proxy.log")
        return self.proxy

    def start_static(self) -> Service:
        """A plain static file server for the copy the key ring writes (a CDN's stand-in)."""
        argv = [sys.executable, "-m", "http.server", str(self.static_port)]
        argv += ["--bind", "127.0.0.1", "--directory", str(self.root / "public")]
        self.static = Service("static", argv, self.env, self.static_port, self.root / "static.log")
        return self.static

    def close(self) -> None:
        for service in (self.proxy, self.issuer, self.static):
            if service is not None:
                service.stop()

    # The issuer's CLI, as an operator runs it.

    def cli(self, *args: str) -> str:
        """`python -m issuer ARGS`; its stdout, after checking that it succeeded."""
        done = subprocess.run(
            [sys.executable, "-m", "issuer", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        assert done.returncode == 0, f"issuer {' '.join(args)}: {done.stderr}"
        return done.stdout

    def spawn_cli(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "issuer", *args],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def register_clients(self, count: int) -> list[tuple[str, str]]:
        """Confidential client_credentials clients, registered in the issuer's database
        (as `clients add --confidential --grant-type client_credentials` does, without
        a process start per client)."""
        engine = engine_for(self.env["ISSUER_DATABASE_URL"])
        try:
            registered = [
                clients.register(
                    engine,
                    Registration(name=f"worker {n}", grant_types=("client_credentials",)),
                )
                for n in range(count)
            ]
        finally:
            engine.dispose()
        return [(client.client_id, secret) for client, secret in registered if secret]

    def committed_at(self) -> float:
        """When the last key-ring change was committed: the manifest's atomic replace."""
        return (self.keys_dir / "manifest.json").stat().st_mtime

    def list_keys(self) -> list[dict]:
        return json.loads(self.cli("keys", "list", "--json"))["keys"]

    # What the issuer publishes and what the proxy fetched.

    def published_kids(self) -> set[str]:
        response = requests.get(f"{self.issuer_url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, response.text
        return {key["kid"] for key in response.json()["keys"]}

    def jwks_etag(self) -> str:
        response = requests.get(f"{self.issuer_url}/.well-known/jwks.json", timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, response.text
        return response.headers["ETag"]

    def proxy_fetches(self, etag: str | None = None) -> int:
        """How many JWKS documents the proxy has fetched (with this ETag, if given)."""
        if not self.access_log.exists():
            return 0
        count = 0
        for line in self.access_log.read_text().splitlines():
            path, status, sent_etag, agent = line.split(" ", 3)
            sent_etag = sent_etag.replace('\\"', '"')  # gunicorn escapes quotes
            if path.endswith("jwks.json") and status == "200" and PROXY_USER_AGENT in agent:
                count += etag is None or sent_etag == etag
        return count


def assert_ring_intact(keys_dir: Path) -> Manifest:
    """What a crash must never leave: a manifest that does not load, not exactly one
    active and one next key, a signing key without its file, or a temporary file."""
    ring = KeyRing(keys_dir)
    manifest = ring.manifest()
    states = [record.state for record in manifest.keys]
    assert states.count(KeyState.ACTIVE) == 1 and states.count(KeyState.NEXT) == 1, states
    assert ring.signing_key().kid == manifest.active.kid
    for kid in manifest.signing_kids():
        assert (keys_dir / f"{kid}.key").is_file(), kid
    leftovers = [p.name for p in keys_dir.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == [], leftovers
    return manifest


def stored_todos(database: LocalDatabase) -> dict[str, set[int]]:
    """Every todo in the database by owner, read as superuser (RLS does not apply)."""
    with psycopg.connect(database.superuser_url, connect_timeout=10) as conn:
        rows = conn.execute("select user_id, id from todos").fetchall()
    stored: dict[str, set[int]] = {}
    for user_id, todo_id in rows:
        stored.setdefault(user_id, set()).add(todo_id)
    return stored


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Poll `condition` until it holds; return when it first held (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.time()
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s")
