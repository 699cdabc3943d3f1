"""Logins in process (Flask test client, SQLite), against the argon2id floor.

Figures (medians of interleaved samples, milliseconds per request):
- a wrong-password login vs one bare argon2id verification at the same
  parameters: the page, form, CSRF, throttle and audit must add little on top
  of the hash (target <= 1.5x).
- an unknown-user login vs a wrong-password login: the dummy-hash path must
  cost the same, or timing tells which emails have accounts (target 0.9-1.1x).
- a throttled login (429) vs a wrong-password login: refused attempts are not
  hashed, so an attacker cannot turn the lock-out into CPU load (target <= 0.2x).
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from bench.report import Figure, median
from issuer import create_app
from issuer.accounts import passwords, users
from issuer.config import Config

SAMPLES = 25
PASSWORD = "correct horse battery"


def sample_ms(operation: Callable[[], object]) -> float:
    start = time.perf_counter()
    operation()
    return (time.perf_counter() - start) * 1000


def failed_login(app: Flask, email: str, address: str) -> Callable[[], None]:
    """One browser posting a wrong password from `address`, again and again."""
    client = app.test_client()
    html = client.get("/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    form = {"csrf_token": token, "email": email, "password": "wrong password"}

    def post() -> None:
        response = client.post("/login", data=form, environ_base={"REMOTE_ADDR": address})
        assert response.status_code in (401, 429), response.status_code

    return post


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(
            database_url=f"sqlite:///{Path(tmp) / 'issuer.sqlite3'}",
            data_dir=Path(tmp) / "data",
            keys_dir=Path(tmp) / "keys",
            secret_key="bench-secret-key-not-for-production",
            # High enough that the timed attempts are never throttled.
            login_max_failures=10 * SAMPLES,
            login_max_failures_per_address=10 * SAMPLES,
        )
        app = create_app(config)
        users.create_user(app.extensions["db"], "ada@example.com", PASSWORD)
        stored = passwords.hash_password(PASSWORD)
        contenders = {
            "verify": lambda: passwords.verify_password(stored, "wrong password"),
            "wrong": failed_login(app, "ada@example.com", "192.0.2.1"),
            "unknown": failed_login(app, "nobody@example.com", "192.0.2.2"),
        }
        locked_app = create_app(dataclasses.replace(config, login_max_failures_per_address=1))
        contenders["throttled"] = failed_login(locked_app, "ada@example.com", "198.51.100.1")
        contenders["throttled"]()  # the one failure that locks the address out

        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(SAMPLES):
            for name, operation in contenders.items():
                samples[name].append(sample_ms(operation))

    verify, wrong, unknown, throttled = (median(samples[k]) for k in contenders)
    return [
        Figure(
            "accounts", "login, wrong password", "ms", wrong, "argon2id verify", verify, "<= 1.5"
        ),
        Figure(
            "accounts", "login, unknown user", "ms", unknown, "wrong password", wrong, "0.9-1.1"
        ),
        Figure(
            "accounts", "login, throttled (429)", "ms", throttled, "wrong password", wrong, "<= 0.2"
        ),
    ]
