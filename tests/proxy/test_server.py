"""`python -m proxy`: gunicorn, one session key per proxy start, dropped at exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import psycopg

from neon_http import NeonHTTP
from tests.proxy.support import SigningKey, claims_for
from tests.support.ports import free_port


def key_count(superuser_url: str) -> int:
    with psycopg.connect(superuser_url) as conn:
        return conn.execute("select count(*) from auth_private.session_keys").fetchone()[0]


def test_gunicorn_serves_sql_and_cleans_up_its_key(
    neon_db: Any, main_jwks: str, ec_key: SigningKey
) -> None:
    port = free_port()
    before = key_count(neon_db.superuser_url)
    env = os.environ | {
        "PROXY_DATABASE_HOST": str(neon_db.server.socket_dir),
        "PROXY_DATABASE_PORT": str(neon_db.server.port),
        "PROXY_ADMIN_URL": neon_db.owner_url,
        "PROXY_JWKS_URL": main_jwks,
        "PROXY_PORT": str(port),
    }
    env.pop("PROXY_AUTH_RULES_FILE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--workers", "2", "--threads", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        client = NeonHTTP(
            "postgresql://authenticated@localhost/neondb",
            auth_token=ec_key.sign(claims_for("gunicorn")),
            endpoint=f"http://127.0.0.1:{port}/sql",
            timeout=10,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                time.sleep(0.1)
        users = {
            client.query("select auth.user_id() as u, pg_backend_pid() as p").rows[0]["u"]
            for _ in range(6)
        }
        assert users == {"gunicorn"}
        assert key_count(neon_db.superuser_url) == before + 1
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
    assert process.returncode == 0, output
    assert key_count(neon_db.superuser_url) == before
