"""`python -m stack run` (`make run`) as an operator starts it, in a temporary directory.

The stack tests and the load test drive what users run: the supervisor,
PostgreSQL, and the issuer, proxy and app on granian. Only ports, directories
and the settings a test passes are set here; nothing of the developer's shell
(`APP_…`, `ISSUER_…`, …) leaks in. Everything the children print (the servers' logs
and the issuer's audit trail) goes to one file, read after the run; a pipe would
block the servers once nobody drained it. A stack can be stopped and started
again on the same state (`start(*options)`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from stack import postgres
from tests.support.ports import free_port

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
READY_LINE = "Ctrl-C stops everything."

# Settings a developer's shell may carry that would point the stack elsewhere.
_INHERITED_PREFIXES = ("APP_", "ISSUER_", "PROXY_", "NEON_", "DATABASE_", "MAIL_")


class SupervisedStack:
    """The supervised stack on free loopback ports, its state under `base`."""

    def __init__(self, base: Path, settings: dict[str, str]) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = base / "stack.log"
        issuer_port, proxy_port, app_port = free_port(), free_port(), free_port()
        # The local SMTP server `make run` starts, on a free port; its Maildir is read
        # as an inbox.
        self.maildir = self.data_dir / "mail"
        # The URLs the supervisor derives from the binds, as `make run` prints them.
        self.issuer_url = f"http://localhost:{issuer_port}"
        self.app_url = f"http://localhost:{app_port}"
        self.proxy_url = f"http://localhost:{proxy_port}/sql"
        self.issuer_database_url = f"sqlite:///{self.data_dir / 'issuer.sqlite3'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
        env.update(
            PYTHONUNBUFFERED="1",
            DATA_DIR=str(self.data_dir),
            ISSUER_DATA_DIR=str(self.data_dir),
            ISSUER_KEYS_DIR=str(base / "keys"),
            ISSUER_DATABASE_URL=self.issuer_database_url,
            ISSUER_BIND=f"127.0.0.1:{issuer_port}",
            PROXY_PORT=str(proxy_port),
            APP_BIND=f"127.0.0.1:{app_port}",
            MAIL_BIND=f"127.0.0.1:{free_port()}",
            **settings,
        )
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._run_starts_at = 0

    def start(self, *options: str) -> None:
        """Start the supervisor (`run` with `options`) and wait until every service is up."""
        self._run_starts_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            # cwd is the temporary directory: no `.env` of the checkout is read.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stack", "run", *options],
                cwd=self.base,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if READY_LINE in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the stack did not come up:\n{self.output()}")

    def stop(self) -> int | None:
        """Ctrl-C, as an operator stops it; kill everything it started if that hangs."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            # Its children run in their own sessions: remember them before any kill.
            children = psutil.Process(self.process.pid).children(recursive=True)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                for child in children:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
                postgres.stop(self.data_dir / "pg", mode="immediate", timeout=STOP_TIMEOUT_S)
        return self.process.returncode

    def output(self) -> str:
        """What the supervisor and its services printed since the last start."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._run_starts_at)
            return log.read().decode(errors="replace")

    def issuer(self, *args: str) -> str:
        """`python -m issuer ARGS` on this stack's issuer (its stdout; it must succeed)."""
        done = subprocess.run(
            [sys.executable, "-m", "issuer", *args],
            cwd=self.base,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def database_url(self) -> str:
        """The superuser's URL of `neondb` on the running embedded server."""
        server = postgres.running(self.data_dir / "pg")
        assert server is not None, "embedded PostgreSQL is not running"
        return server.url(dbname="neondb")
