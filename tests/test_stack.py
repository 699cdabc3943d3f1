"""`make run` for real: the supervisor starts PostgreSQL, issuer, proxy and the todo
app; a token from the issuer's CLI queries todos through the proxy under RLS; a key
rotation does not break verification; Ctrl-C stops everything; a restart keeps the
data, the keys and the app's OAuth client; `--demo-users` adds the demo accounts."""

from __future__ import annotations

import errno
import json
import shutil
import socket
import stat
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from neon_http import NeonDbError, NeonHTTP
from stack import postgres
from tests.app.live import hidden_field
from tests.support.supervised_stack import SupervisedStack

pytestmark = pytest.mark.stack

CONNECTION = "postgresql://authenticated@localhost/neondb"


class Stack(SupervisedStack):
    """The supervised stack, with one worker per service, and what the test does with it."""

    def lines(self) -> list[str]:
        return self.output().splitlines(keepends=True)

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
        assert page.url.startswith(f"{self.issuer_url}/login"), page.url
        token = hidden_field(page.text, "csrf_token")
        data = {"email": email, "password": password, "csrf_token": token}
        done = browser.post(page.url, data=data, timeout=15)
        assert done.status_code == 200, done.text
        assert done.url == f"{self.app_url}/", done.url
        return browser

    def client(self, subject: str) -> NeonHTTP:
        token = self.issuer("token", "mint", "--sub", subject)
        return NeonHTTP(CONNECTION, auth_token=token, endpoint=self.proxy_url)


def assert_ipv6_twin_held(port: int | None) -> None:
    """Nobody else can listen on [::1]:port, where `localhost` may lead clients."""
    twin = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    twin.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        with pytest.raises(OSError) as taken:
            twin.bind(("::1", port or 0))
        if taken.value.errno == errno.EADDRNOTAVAIL:
            return  # no IPv6 loopback on this host: nothing to hold
        assert taken.value.errno == errno.EADDRINUSE, taken.value
    finally:
        twin.close()


@pytest.fixture
def stack() -> Iterator[Stack]:
    # Outside pytest's temp root, as for `pg_server` (see tests/conftest.py).
    base = Path(tempfile.mkdtemp(prefix="neon-own-login-stack-"))
    running = Stack(base, {"ISSUER_WORKERS": "1", "PROXY_WORKERS": "1", "APP_WORKERS": "1"})
    running.start()
    yield running
    running.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_the_stack_serves_rls_queries_with_issuer_tokens_and_stops_cleanly(stack: Stack) -> None:
    urls = [line.split()[0] for line in stack.lines() if line.startswith("  ")]
    assert urls == ["app", "issuer", "proxy", "mail", "data", "database"], stack.output()
    assert f"  app       {stack.app_url}  <- open this\n" in stack.lines()
    data_api = f"{stack.proxy_url.removesuffix('/sql')}/neondb/rest/v1"
    assert f"  data api  {data_api}\n" in stack.lines()
    assert stack.app_status("/healthz") == 200
    for url in (stack.app_url, stack.issuer_url, stack.proxy_url):
        assert_ipv6_twin_held(urlsplit(url).port)
    credentials_file = stack.data_dir / "app-client.json"
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
    # The printed Data API serves the same rows to the same tokens.
    for subject, tasks in (("alice", [{"task": "alice's secret"}]), ("bob", [])):
        token = stack.issuer("token", "mint", "--sub", subject)
        answer = requests.get(
            f"{data_api}/todos",
            params={"select": "task"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )
        assert (answer.status_code, answer.json()) == (200, tasks), answer.text

    kids_before = json.loads(stack.issuer("keys", "list", "--json"))
    stack.issuer("keys", "rotate", "--force")
    time.sleep(1.5)  # other processes notice a rotation within a second
    carol = stack.client("carol")  # signed by the former `next`, already published
    assert carol.query("select auth.user_id() as sub").rows == [{"sub": "carol"}]
    assert alice.query("select count(*) as n from todos").rows == [{"n": "1"}]

    assert stack.stop() == 0, stack.output()
    assert postgres.running(stack.data_dir / "pg") is None, stack.output()

    again = stack
    again.start("--demo-users")
    try:
        assert stack.client("alice").query("select task from todos").rows == [
            {"task": "alice's secret"}
        ]
        kids_after = json.loads(again.issuer("keys", "list", "--json"))
        assert {k["kid"] for k in kids_before["keys"]} <= {k["kid"] for k in kids_after["keys"]}
        assert json.loads(credentials_file.read_text()) == credentials, "the client is reused"
        assert len(again.issuer("clients", "list").splitlines()) == 1
        assert "registered" not in again.output(), again.output()
        assert again.app_status("/healthz") == 200
        emails = {json.loads(u)["email"] for u in again.issuer("users", "list", "--json").split()}
        assert emails == {"alice@example.com", "bob@example.com"}
        shown = again.output()
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
