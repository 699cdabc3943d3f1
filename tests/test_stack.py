"""`make run` for real: the supervisor starts PostgreSQL, issuer, proxy and the todo
app; a token from the issuer's CLI queries todos through the proxy under RLS; a key
rotation does not break verification; Ctrl-C stops everything; a restart keeps the
data, the keys and the app's OAuth client; `--demo-users` adds the demo accounts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from neon_http import NeonDbError, NeonHTTP
from stack import postgres
from tests.app.live import hidden_field

CONNECTION = "postgresql://authenticated@localhost/neondb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def stack_env() -> Iterator[dict[str, str]]:
    # Outside pytest's temp root, as for `pg_server` (see tests/conftest.py).
    tmp_path = Path(tempfile.mkdtemp(prefix="neon-own-login-stack-"))
    issuer_port, proxy_port, app_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{issuer_port}"
    yield dict(
        os.environ,
        DATA_DIR=str(tmp_path / "data"),
        ISSUER_DATA_DIR=str(tmp_path / "data"),
        ISSUER_KEYS_DIR=str(tmp_path / "keys"),
        ISSUER_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'issuer.sqlite3'}",
        ISSUER_BIND=f"127.0.0.1:{issuer_port}",
        ISSUER_URL=issuer,
        ISSUER_WORKERS="1",
        PROXY_PORT=str(proxy_port),
        PROXY_WORKERS="1",
        PROXY_JWKS_URL=f"{issuer}/.well-known/jwks.json",
        APP_BIND=f"127.0.0.1:{app_port}",
        APP_WORKERS="1",
    )
    shutil.rmtree(tmp_path, ignore_errors=True)


class Stack:
    def __init__(self, env: dict[str, str], *options: str) -> None:
        self.env = env
        self.app_url = f"http://{env['APP_BIND']}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stack", "run", *options],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        deadline = time.monotonic() + 90
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if "Ctrl-C stops everything" in line:
                return
        self.process.kill()
        raise AssertionError("stack did not come up:\n" + "".join(self.output))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=60)
        self.output.append(out)
        return self.process.returncode

    def issuer(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "issuer", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def app_status(self, path: str) -> int:
        """The app's answer to GET `path`, once its workers answer at all."""
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.app_url + path, timeout=5) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def log_in(self, email: str, password: str) -> requests.Session:
        """A browser-like session, logged in to the app through the issuer's pages."""
        browser = requests.Session()
        page = browser.get(f"{self.app_url}/login", timeout=15)
        assert page.url.startswith(f"{self.env['ISSUER_URL']}/login"), page.url
        token = hidden_field(page.text, "csrf_token")
        data = {"email": email, "password": password, "csrf_token": token}
        done = browser.post(page.url, data=data, timeout=15)
        assert done.status_code == 200, done.text
        assert done.url == f"{self.app_url}/", done.url
        return browser

    def client(self, subject: str) -> NeonHTTP:
        token = self.issuer("token", "mint", "--sub", subject)
        endpoint = f"http://127.0.0.1:{self.env['PROXY_PORT']}/sql"
        return NeonHTTP(CONNECTION, auth_token=token, endpoint=endpoint)


@pytest.fixture
def stack(stack_env: dict[str, str]) -> Iterator[Stack]:
    running = Stack(stack_env)
    yield running
    if running.process.poll() is None:
        running.stop()


def test_the_stack_serves_rls_queries_with_issuer_tokens_and_stops_cleanly(
    stack: Stack, stack_env: dict[str, str]
) -> None:
    urls = [line.split()[0] for line in stack.output if line.startswith("  ")]
    assert urls == ["app", "issuer", "proxy", "database"], "".join(stack.output)
    assert f"  app      {stack.app_url}  <- open this\n" in stack.output
    assert stack.app_status("/healthz") == 200
    credentials_file = Path(stack_env["DATA_DIR"]) / "app-client.json"
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
    credentials = json.loads(credentials_file.read_text())
    assert credentials["client_id"] == "todo-app"
    assert stack.issuer("clients", "list").splitlines() == [
        "todo-app\tconfidential\tauthorization_code,refresh_token\tfirst-party\t"
        "urn:neon:database\tTodo app"
    ]
    assert stack.issuer("users", "list") == "", "no demo users unless asked for"
    alice, bob = stack.client("alice"), stack.client("bob")
    alice.query("insert into todos (task) values ($1)", ["alice's secret"])
    assert alice.query("select task from todos").rows == [{"task": "alice's secret"}]
    assert bob.query("select task from todos").rows == []
    with pytest.raises(NeonDbError) as refused:
        bob.query("insert into todos (task, user_id) values ('x', 'alice')")
    assert refused.value.code == "42501"

    kids_before = json.loads(stack.issuer("keys", "list", "--json"))
    stack.issuer("keys", "rotate", "--force")
    time.sleep(1.5)  # other processes notice a rotation within a second
    carol = stack.client("carol")  # signed by the former `next`, already published
    assert carol.query("select auth.user_id() as sub").rows == [{"sub": "carol"}]
    assert alice.query("select count(*) as n from todos").rows == [{"n": "1"}]

    assert stack.stop() == 0, "".join(stack.output)
    assert postgres.running(Path(stack_env["DATA_DIR"]) / "pg") is None, "".join(stack.output)

    again = Stack(stack_env, "--demo-users")
    try:
        assert stack.client("alice").query("select task from todos").rows == [
            {"task": "alice's secret"}
        ]
        kids_after = json.loads(again.issuer("keys", "list", "--json"))
        assert {k["kid"] for k in kids_before["keys"]} <= {k["kid"] for k in kids_after["keys"]}
        assert json.loads(credentials_file.read_text()) == credentials, "the client is reused"
        assert len(again.issuer("clients", "list").splitlines()) == 1
        assert not any("registered" in line for line in again.output), "".join(again.output)
        assert again.app_status("/healthz") == 200
        emails = {json.loads(u)["email"] for u in again.issuer("users", "list", "--json").split()}
        assert emails == {"alice@example.com", "bob@example.com"}
        shown = "".join(again.output)
        assert "alice@example.com  alice-demo-password" in shown
        assert "bob@example.com    bob-demo-password" in shown

        # The app logs in with the reused client secret and queries through the proxy.
        browser = again.log_in("alice@example.com", "alice-demo-password")
        page = browser.get(f"{again.app_url}/", timeout=15)
        data = {
            "task": "written through the app",
            "csrf_token": hidden_field(page.text, "csrf_token"),
        }
        added = browser.post(f"{again.app_url}/todos", data=data, timeout=15)
        assert added.status_code == 200, added.text
        assert "written through the app" in added.text
    finally:
        assert again.stop() == 0
