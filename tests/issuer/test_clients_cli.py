"""`python -m issuer clients add|list`, through click's runner and one real subprocess."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from issuer.db import get_engine
from issuer.oauth.clients import clients_table


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["clients", *args])


def stored(app) -> list:
    with app.app_context(), get_engine().connect() as conn:
        return conn.execute(select(clients_table)).all()


def test_confidential_client_secret_is_printed_once_and_stored_as_digest(oauth_app):
    result = run(
        oauth_app,
        "add",
        "--name",
        "Todo app",
        "--redirect-uri",
        "http://127.0.0.1:8000/callback",
        "--redirect-uri",
        "https://todo.example/callback",
        "--first-party",
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
    secret = lines["client_secret"]
    assert len(secret) >= 43
    (row,) = stored(oauth_app)
    assert row.client_id == lines["client_id"]
    assert row.secret_digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(tuple(row))
    listing = run(oauth_app, "list")
    assert lines["client_id"] in listing.output
    assert "confidential" in listing.output
    assert secret not in listing.output


def test_public_client_has_no_secret(oauth_app):
    result = run(
        oauth_app, "add", "--name", "SPA", "--public", "--redirect-uri", "http://localhost:5173/cb"
    )
    assert result.exit_code == 0, result.output
    assert "client_secret" not in result.output
    assert stored(oauth_app)[0].secret_digest is None


def test_service_account(oauth_app):
    result = run(oauth_app, "add", "--name", "job", "--grant-type", "client_credentials")
    assert result.exit_code == 0, result.output
    assert "client_secret" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redirect-uri", "/relative"], "absolute"),
        (["--redirect-uri", "http://example.com/cb"], "https"),
        (["--redirect-uri", "https://example.com/cb#frag"], "fragment"),
        (["--redirect-uri", "ftp://example.com/cb"], "absolute"),
        (["--redirect-uri", "https://exa mple.com/cb"], ""),
        ([], "redirect-uri"),
        (["--redirect-uri", "https://a.example/cb", "--scope", "openid admin"], "admin"),
        (["--public", "--grant-type", "client_credentials"], "confidential"),
        (["--redirect-uri", "https://a.example/cb", "--client-id", "a b"], "client id"),
        (
            [
                "--redirect-uri",
                "https://a.example/cb",
                "--post-logout-redirect-uri",
                "http://x.example/",
            ],
            "https",
        ),
        (["--grant-type", "password"], "password"),
    ],
)
def test_bad_registrations_fail_clearly_and_store_nothing(oauth_app, args, message):
    result = run(oauth_app, "add", "--name", "x", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert stored(oauth_app) == []


def test_duplicate_client_id_is_refused(oauth_app):
    args = ["add", "--name", "a", "--redirect-uri", "https://a.example/cb", "--client-id", "todo"]
    assert run(oauth_app, *args).exit_code == 0
    again = run(oauth_app, *args)
    assert again.exit_code != 0
    assert "already registered" in again.output


def test_python_m_issuer_clients_in_a_subprocess(issuer_config, tmp_path):
    env = {
        **os.environ,
        "ISSUER_KEYS_DIR": str(issuer_config.keys_dir),
        "ISSUER_DATABASE_URL": issuer_config.database_url,
        "ISSUER_DATA_DIR": str(issuer_config.data_dir),
        "ISSUER_SECRET_KEY": "test-secret",
    }
    command = [sys.executable, "-m", "issuer", "clients", "add", "--name", "bad"]
    result = subprocess.run(
        [*command, "--redirect-uri", "http://evil.example/cb"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "https" in result.stderr
    result = subprocess.run(
        [*command, "--redirect-uri", "https://ok.example/cb"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "client_secret: " in result.stdout
