"""A real issuer under gunicorn (2 workers) follows a rotation done by the CLI, no restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from issuer.keys import REFRESH_INTERVAL, KeyRing
from tests.support.ports import free_port
from tests.support.servers import stop_server, wait_answering

REPO = Path(__file__).resolve().parents[2]
REQUESTS = 30  # enough that both workers answer after the change


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUER_")}
    env |= {
        "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        "ISSUER_DATA_DIR": str(tmp_path / "data"),
        "ISSUER_SECRET_KEY": "test-secret-key-not-for-production",
    }
    KeyRing(Path(env["ISSUER_KEYS_DIR"])).init()
    return env


@pytest.fixture
def server(server_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "issuer:create_app()"],
        cwd=REPO, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_answering(f"{base}/.well-known/jwks.json", process)
        yield base
    finally:
        try:
            stop_server(process, within=15)
        finally:
            process.stderr.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "issuer", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip


def kids(response: requests.Response) -> list[str]:
    return [k["kid"] for k in response.json()["keys"]]


def test_workers_serve_the_new_jwks_after_a_cli_rotation(
    server: str, server_env: dict[str, str], verify
) -> None:
    url = f"{server}/.well-known/jwks.json"
    session = requests.Session()
    first = session.get(url, timeout=5)
    assert first.status_code == 200
    old_etag, old_kids = first.headers["ETag"], kids(first)

    cli(server_env, "keys", "rotate", "--force")
    manifest = KeyRing(Path(server_env["ISSUER_KEYS_DIR"])).manifest()
    expected = [manifest.active.kid, manifest.next.kid, old_kids[0]]
    time.sleep(REFRESH_INTERVAL + 0.1)  # workers stat the manifest at most once per interval
    for _ in range(REQUESTS):
        response = session.get(url, headers={"If-None-Match": old_etag}, timeout=5)
        assert response.status_code == 200
        assert kids(response) == expected
        assert response.headers["ETag"] != old_etag

    token = cli(server_env, "token", "mint", "--sub", "alice").stdout.strip()
    verify(token, session.get(url, timeout=5).content)

    cli(server_env, "keys", "revoke", "--yes", old_kids[0])
    time.sleep(REFRESH_INTERVAL + 0.1)
    for _ in range(REQUESTS):
        assert old_kids[0] not in kids(session.get(url, timeout=5))


def test_conditional_get_and_head_over_http(server: str) -> None:
    url = f"{server}/.well-known/jwks.json"
    first = requests.get(url, timeout=5)
    again = requests.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
    assert again.status_code == 304 and again.content == b""
    head = requests.head(url, timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(first.content))
