"""`python -m issuer users …`: accounts from the command line, and its refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import func, select

from issuer.accounts import users
from issuer.accounts.models import users as users_table

PASSWORD = "correct horse battery"


@pytest.fixture
def app(make_issuer_app: Callable[..., Flask]) -> Flask:
    return make_issuer_app()


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["users", *args], input=input)


def stored_users(app: Flask) -> int:
    with app.extensions["db"].connect() as conn:
        return conn.execute(select(func.count()).select_from(users_table)).scalar_one()


def test_add_with_prompt_and_claims(app: Flask) -> None:
    result = run(
        app,
        "add",
        "Ada@Example.com",
        "--claim",
        "team=admin",
        "--claim",
        "level=3",
        "--claim",
        'teams=["a","b"]',
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output + result.stderr
    user = users.find_user(app.extensions["db"], "ada@example.com")
    assert user is not None
    assert f"Created ada@example.com (sub {user.id})" in result.stdout
    assert user.claims == {"team": "admin", "level": 3, "teams": ["a", "b"]}
    assert users.authenticate(app.extensions["db"], user.email, PASSWORD).user == user
    assert PASSWORD not in result.stdout + result.stderr
    audit = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(a["event"], a["user_id"]) for a in audit] == [("user.created", user.id)]


def test_add_password_from_stdin(app: Flask) -> None:
    result = run(app, "add", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    assert users.authenticate(app.extensions["db"], "ada@example.com", PASSWORD).user


def test_prompt_confirmation_must_match(app: Flask) -> None:
    result = run(app, "add", "ada@example.com", input=f"{PASSWORD}\nsomething else\n")
    assert result.exit_code != 0
    assert "do not match" in result.stderr or "do not match" in result.stdout
    assert stored_users(app) == 0


@pytest.mark.parametrize(
    ("args", "stdin", "message", "code"),
    [
        (["not-an-email", "--password-stdin"], PASSWORD, "valid email", 2),
        (["ada@example.com", "--password-stdin"], "", "at least 8 characters", 1),
        (["ada@example.com", "--password-stdin"], "seven77", "at least 8 characters", 1),
        (["ada@example.com", "--password-stdin"], "x" * 257, "at most 256 characters", 1),
        (["ada@example.com", "--password-stdin", "--claim", "team"], PASSWORD, "NAME=VALUE", 2),
        (["ada@example.com", "--password-stdin", "--claim", "=x"], PASSWORD, "NAME=VALUE", 2),
        (["ada@example.com", "--password-stdin", "--claim", "sub=x"], PASSWORD, "'sub'", 2),
        (
            ["ada@example.com", "--password-stdin", "--claim", "a=1", "--claim", "a=2"],
            PASSWORD,
            "twice",
            2,
        ),
    ],
)
def test_add_refusals_write_nothing(
    app: Flask, args: list[str], stdin: str, message: str, code: int
) -> None:
    result = run(app, "add", *args, input=stdin)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert stored_users(app) == 0


def test_duplicate_email_is_an_error(app: Flask) -> None:
    assert run(app, "add", "ada@example.com", "--password-stdin", input=PASSWORD).exit_code == 0
    result = run(app, "add", "ADA@example.com", "--password-stdin", input=PASSWORD)
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert stored_users(app) == 1


def test_list_shows_no_hashes(app: Flask) -> None:
    engine = app.extensions["db"]
    ada = users.create_user(engine, "ada@example.com", PASSWORD, {"team": "admin"})
    users.create_user(engine, "grace@example.com", PASSWORD)
    users.set_disabled(engine, "grace@example.com", True)

    result = run(app, "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{ada.id}  ada@example.com  active,unverified  ")
    assert lines[0].endswith('{"team":"admin"}')
    assert "grace@example.com  disabled" in lines[1]
    assert "argon2" not in result.stdout

    result = run(app, "list", "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0] == {
        "id": ada.id,
        "email": "ada@example.com",
        "claims": {"team": "admin"},
        "disabled": False,
        "email_verified": False,
        "created_at": ada.created_at.isoformat(),
    }
    assert "argon2" not in result.stdout


def test_disable_and_enable(app: Flask) -> None:
    engine = app.extensions["db"]
    ada = users.create_user(engine, "ada@example.com", PASSWORD)
    result = run(app, "disable", "ADA@example.com")
    assert result.exit_code == 0
    assert "Disabled ada@example.com" in result.stdout
    assert '"event":"user.disabled"' in result.stderr
    assert users.authenticate(engine, ada.email, PASSWORD).reason == "disabled"
    assert run(app, "enable", "ada@example.com").exit_code == 0
    assert users.authenticate(engine, ada.email, PASSWORD).user == ada


@pytest.mark.parametrize("command", ["disable", "enable"])
def test_unknown_user_is_an_error(app: Flask, command: str) -> None:
    result = run(app, command, "ghost@example.com")
    assert result.exit_code == 1
    assert "No account for ghost@example.com" in result.stderr


def test_python_dash_m_issuer_users(tmp_path: Path) -> None:
    """The real entry point, configured from the environment only."""
    env = {
        **os.environ,
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 'issuer.sqlite3'}",
        "ISSUER_DATA_DIR": str(tmp_path / "data"),
        "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
    }
    env.pop("ISSUER_SECRET_KEY", None)

    def issuer(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "issuer", "users", *args],
            input=stdin,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = issuer(
        "add", "ada@example.com", "--password-stdin", "--claim", "team=admin", stdin=PASSWORD
    )
    assert created.returncode == 0, created.stderr
    listed = issuer("list", "--json")
    assert listed.returncode == 0
    assert json.loads(listed.stdout)["claims"] == {"team": "admin"}
    again = issuer("add", "ada@example.com", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 1
    assert "Error: An account for ada@example.com already exists." in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ISSUER_DATABASE_URL", "mysql://admin:s3cret@db/issuer", "unsupported database URL"),
        ("ISSUER_SIGNUP", "flase", "ISSUER_SIGNUP must be true or false"),
        ("ISSUER_LOGIN_MAX_FAILURES", "0", "ISSUER_LOGIN_MAX_FAILURES must be at least 1"),
        ("ISSUER_LOGIN_FAILURE_WINDOW", "-5", "ISSUER_LOGIN_FAILURE_WINDOW must be at least 1"),
        ("ISSUER_SESSION_LIFETIME", "0", "ISSUER_SESSION_LIFETIME must be at least 1"),
        ("ISSUER_ACCESS_TOKEN_TTL", "-60", "ISSUER_ACCESS_TOKEN_TTL must be at least 1"),
        ("ISSUER_ACCESS_TOKEN_TTL", "15m", "ISSUER_ACCESS_TOKEN_TTL must be a whole number"),
        ("ISSUER_URL", "login.example.com", "ISSUER_URL must be an absolute http or https URL"),
        ("ISSUER_URL", "https://login.example.com:99999", "ISSUER_URL must be a URL"),
        ("ISSUER_TRUSTED_PROXIES", "-1", "ISSUER_TRUSTED_PROXIES must be at least 0"),
        ("ISSUER_ROTATION_MIN_PUBLISHED", "600", "ISSUER_ROTATION_MIN_PUBLISHED (600 s) must"),
        ("ISSUER_DATABASE_AUDIENCE", "database", "ISSUER_DATABASE_AUDIENCE: resource"),
        ("ISSUER_REFRESH_REUSE_INTERVAL", "-1", "ISSUER_REFRESH_REUSE_INTERVAL must be at least 0"),
        ("ISSUER_REFRESH_REUSE_INTERVAL", "61", "ISSUER_REFRESH_REUSE_INTERVAL must be at most 60"),
    ],
)
def test_bad_settings_are_one_line_errors(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = {**os.environ, "ISSUER_DATA_DIR": str(tmp_path / "data"), variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "issuer", "users", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {message}")
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr


def test_role_is_the_issuers_claim(oauth_app) -> None:
    """Neon's Data API would switch to a Postgres role named by it."""
    result = oauth_app.test_cli_runner().invoke(
        args=["users", "add", "x@example.com", "--password-stdin", "--claim", "role=neondb_owner"],
        input="a-long-enough-password\n",
    )
    assert result.exit_code == 2
    assert "'role' is set by the issuer itself" in result.output


def test_verify_and_add_verified(app: Flask) -> None:
    engine = app.extensions["db"]
    users.create_user(engine, "ada@example.com", PASSWORD)
    result = run(app, "verify", "ADA@example.com")
    assert result.exit_code == 0, result.output
    assert "Marked ada@example.com as verified" in result.stdout
    assert users.find_user(engine, "ada@example.com").email_verified
    added = run(app, "add", "grace@example.com", "--password-stdin", "--verified", input=PASSWORD)
    assert added.exit_code == 0, added.output
    assert users.find_user(engine, "grace@example.com").email_verified
    listed = [json.loads(line) for line in run(app, "list", "--json").stdout.splitlines()]
    assert {u["email"]: u["email_verified"] for u in listed} == {
        "ada@example.com": True,
        "grace@example.com": True,
    }
    unknown = run(app, "verify", "nobody@example.com")
    assert unknown.exit_code == 1 and "No account for nobody@example.com" in unknown.output
