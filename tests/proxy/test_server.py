"""`python -m proxy` under each server (`PROXY_SERVER`: granian, the default, and
gunicorn): one session key per proxy start, dropped at exit; pooled connections go
back to the pool when a response is complete, whatever the server does with the
body, and when the client is gone before its answer."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests

from neon_http import NeonHTTP
from tests.proxy.support import SigningKey, claims_for
from tests.support.ports import free_port
from tests.support.servers import wait_answering

CONNECTION = "postgresql://authenticated@localhost/neondb"


def key_count(superuser_url: str) -> int:
    with psycopg.connect(superuser_url) as conn:
        return conn.execute("select count(*) from auth_private.session_keys").fetchone()[0]


@pytest.fixture(params=["granian", "gunicorn"])
def served(request: pytest.FixtureRequest, neon_db: Any, main_jwks: str) -> Iterator[int]:
    """`python -m proxy` on a free port: 2 workers of 2 threads, pools of 2
    connections that a request waits for at most 1 s (a connection never given
    back shows as a 503 within a few requests)."""
    port = free_port()
    env = os.environ | {
        "PROXY_SERVER": request.param,
        "PROXY_DATABASE_HOST": str(neon_db.server.socket_dir),
        "PROXY_DATABASE_PORT": str(neon_db.server.port),
        "PROXY_ADMIN_URL": neon_db.owner_url,
        "PROXY_JWKS_URL": main_jwks,
        "PROXY_PORT": str(port),
        "PROXY_POOL_TIMEOUT": "1",
    }
    env.pop("PROXY_AUTH_RULES_FILE", None)
    before = key_count(neon_db.superuser_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--workers", "2", "--threads", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_answering(f"http://127.0.0.1:{port}/healthz", process, within=20)
        assert key_count(neon_db.superuser_url) == before + 1
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
    assert process.returncode == 0, output
    assert key_count(neon_db.superuser_url) == before


def sql_request(token: str, query: str) -> tuple[dict[str, str], bytes]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Neon-Connection-String": CONNECTION,
        "Content-Type": "application/json",
    }
    return headers, json.dumps({"query": query, "params": []}).encode()


def test_serves_sql_with_one_session_key(served: int, ec_key: SigningKey) -> None:
    client = NeonHTTP(
        CONNECTION,
        auth_token=ec_key.sign(claims_for("server")),
        endpoint=f"http://127.0.0.1:{served}/sql",
        timeout=10,
    )
    users = {client.query("select auth.user_id() as u").rows[0]["u"] for _ in range(6)}
    assert users == {"server"}


def test_a_thousand_requests_over_16_connections_find_a_connection(
    served: int, ec_key: SigningKey
) -> None:
    headers, body = sql_request(ec_key.sign(claims_for("many")), "select auth.user_id() as u")

    def connection(_: int) -> list[int]:
        with requests.Session() as http:  # keep-alive: one HTTP connection each
            return [
                http.post(
                    f"http://127.0.0.1:{served}/sql", headers=headers, data=body, timeout=10
                ).status_code
                for _ in range(1000 // 16 + 1)
            ]

    with ThreadPoolExecutor(16) as pool:
        statuses = [status for batch in pool.map(connection, range(16)) for status in batch]
    assert len(statuses) >= 1000
    assert set(statuses) == {200}


def test_clients_gone_before_their_answer_leave_no_connection_busy(
    served: int, ec_key: SigningKey
) -> None:
    headers, body = sql_request(
        ec_key.sign(claims_for("gone")), "select auth.user_id() as u, pg_sleep(0.02)"
    )
    raw = (
        f"POST /sql HTTP/1.1\r\nHost: 127.0.0.1:{served}\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    ).encode() + body
    for _ in range(40):  # ten times every pooled connection of both workers
        with socket.create_connection(("127.0.0.1", served), timeout=5) as gone:
            gone.sendall(raw)
            gone.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    time.sleep(0.5)  # the answers are written into closed connections
    with requests.Session() as http:
        statuses = [
            http.post(
                f"http://127.0.0.1:{served}/sql", headers=headers, data=body, timeout=10
            ).status_code
            for _ in range(20)
        ]
    assert set(statuses) == {200}
