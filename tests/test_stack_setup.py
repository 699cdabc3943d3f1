"""What `make run` prepares before starting the app: its OAuth client, demo users,
the children's environment; and `make neon-setup` refusing to run without a URL."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from sqlalchemy import Engine, select

import servicedb
from app.config import AppConfig
from issuer import migrations
from issuer.accounts import users
from issuer.config import Config
from issuer.oauth import clients
from issuer.oauth.clients import ClientError, clients_table
from proxy.config import ProxyConfig
from stack import app_client, demo_users, supervisor

ROOT = Path(__file__).resolve().parent.parent
APP_URL = "http://localhost:8000"
AUDIENCE = "urn:neon:database"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = servicedb.engine_for(f"sqlite:///{tmp_path / 'issuer.sqlite3'}")
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / app_client.FILE_NAME


def registered(engine: Engine) -> list[clients.Client]:
    return list(clients.all_clients(engine))


def test_first_run_registers_a_confidential_first_party_client(engine, path):
    credentials, change = app_client.ensure(engine, APP_URL, path)
    assert change is not None and "registered" in change
    (client,) = registered(engine)
    assert client.client_id == credentials.client_id == "todo-app"
    assert client.check_client_secret(credentials.client_secret)
    assert not client.is_public and client.first_party
    assert client.redirect_uris == ("http://localhost:8000/auth/callback",)
    assert client.post_logout_redirect_uris == ("http://localhost:8000/",)
    assert client.grant_types == ("authorization_code", "refresh_token")
    assert client.scope == "openid profile email"
    assert client.audiences == (AUDIENCE,), "the todo app may obtain database tokens"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "client_id": "todo-app",
        "client_secret": credentials.client_secret,
    }
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left"


def test_a_later_run_reuses_the_client_and_its_secret(engine, path):
    first, _ = app_client.ensure(engine, APP_URL + "/", path)
    with engine.connect() as conn:
        before = conn.execute(select(clients_table)).all()
    again, change = app_client.ensure(engine, APP_URL, path)
    assert change is None
    assert again == first
    with engine.connect() as conn:
        assert conn.execute(select(clients_table)).all() == before


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda path: path.unlink(), "missing"),
        (lambda path: path.write_text("{not json"), "missing or unreadable"),
        (lambda path: path.write_text('{"client_id": "todo-app"}'), "missing or unreadable"),
        (lambda path: path.write_text('["todo-app", "secret"]'), "missing or unreadable"),
        (
            lambda path: path.write_text('{"client_id": "other", "client_secret": "x"}'),
            "missing or unreadable",
        ),
        (
            lambda path: path.write_text('{"client_id": "todo-app", "client_secret": "guess"}'),
            "does not match",
        ),
    ],
)
def test_a_lost_or_wrong_file_replaces_the_registration(engine, path, damage, reason):
    first, _ = app_client.ensure(engine, APP_URL, path)
    damage(path)
    second, change = app_client.ensure(engine, APP_URL, path)
    assert change is not None and reason in change
    assert second.client_secret != first.client_secret
    (client,) = registered(engine)
    assert client.check_client_secret(second.client_secret)
    assert not client.check_client_secret(first.client_secret)
    assert app_client._read(path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_new_app_url_replaces_the_redirect_uris(engine, path):
    first, _ = app_client.ensure(engine, APP_URL, path)
    second, change = app_client.ensure(engine, "https://todo.example", path)
    assert change is not None and "APP_URL is now https://todo.example" in change
    (client,) = registered(engine)
    assert client.redirect_uris == ("https://todo.example/auth/callback",)
    assert client.post_logout_redirect_uris == ("https://todo.example/",)
    assert client.check_client_secret(second.client_secret)
    assert not client.check_client_secret(first.client_secret)


def test_a_lost_issuer_database_registers_the_client_again(engine, path):
    app_client.ensure(engine, APP_URL, path)
    clients.remove(engine, "todo-app")
    credentials, change = app_client.ensure(engine, APP_URL, path)
    assert change is not None and "registered" in change
    (client,) = registered(engine)
    assert client.check_client_secret(credentials.client_secret)


def test_an_app_url_the_issuer_refuses_changes_nothing(engine, path):
    first, _ = app_client.ensure(engine, APP_URL, path)
    before = path.read_bytes()
    with pytest.raises(ClientError, match="https"):
        app_client.ensure(engine, "http://todo.example", path)
    assert path.read_bytes() == before
    (client,) = registered(engine)
    assert client.check_client_secret(first.client_secret)


def test_operator_credentials_are_used_and_nothing_is_registered(engine, tmp_path):
    env = {"APP_URL": APP_URL, "APP_CLIENT_ID": "mine", "APP_CLIENT_SECRET": "s3cret"}
    supervisor.ensure_app_client(env, engine, tmp_path, AUDIENCE)
    assert env["APP_CLIENT_ID"] == "mine" and env["APP_CLIENT_SECRET"] == "s3cret"
    assert registered(engine) == []
    assert not (tmp_path / app_client.FILE_NAME).exists()


@pytest.mark.parametrize("name", ["APP_CLIENT_ID", "APP_CLIENT_SECRET"])
def test_half_of_the_operator_credentials_is_an_error(engine, tmp_path, name):
    env = {"APP_URL": APP_URL, name: "x"}
    with pytest.raises(click.ClickException, match=f"{name} is set without its pair"):
        supervisor.ensure_app_client(env, engine, tmp_path, AUDIENCE)
    assert registered(engine) == []


def test_registration_fills_the_app_environment(engine, tmp_path):
    env = {"APP_URL": APP_URL}
    supervisor.ensure_app_client(env, engine, tmp_path, AUDIENCE)
    stored = json.loads((tmp_path / app_client.FILE_NAME).read_text())
    assert env["APP_CLIENT_ID"] == stored["client_id"] == "todo-app"
    assert env["APP_CLIENT_SECRET"] == stored["client_secret"]


def test_a_refused_app_url_is_a_one_line_error(engine, tmp_path):
    with pytest.raises(click.ClickException, match=r"^APP_URL: .*https"):
        supervisor.ensure_app_client({"APP_URL": "http://todo.example"}, engine, tmp_path, AUDIENCE)


def test_demo_users_are_created_once_and_existing_accounts_are_kept(engine):
    users.create_user(engine, "bob@example.com", "bob's own password")
    assert demo_users.ensure(engine) == ["alice@example.com"]
    assert demo_users.ensure(engine) == []
    alice = users.authenticate(engine, "alice@example.com", "alice-demo-password")
    assert alice.user is not None
    kept = users.authenticate(engine, "bob@example.com", "bob-demo-password")
    assert kept.user is None, "an existing account's password is never reset"


def test_children_share_one_set_of_addresses(tmp_path):
    env = supervisor.stack_env(
        {"ISSUER_BIND": "127.0.0.1:9001", "PROXY_PORT": "9444", "APP_BIND": "127.0.0.1:9000"},
        tmp_path,
    )
    # Loopback binds are named `localhost`: WebAuthn refuses IP addresses.
    assert env["ISSUER_URL"] == "http://localhost:9001"
    assert env["PROXY_JWKS_URL"] == "http://localhost:9001/.well-known/jwks.json"
    assert env["NEON_HTTP_ENDPOINT"] == "http://localhost:9444/sql"
    assert env["APP_DATA_API_URL"] == "http://localhost:9444/neondb/rest/v1"
    assert env["APP_URL"] == "http://localhost:9000"
    assert env["DATABASE_AUTHENTICATED_URL"] == "postgresql://authenticated@localhost/neondb"
    assert env["APP_STORE_URL"] == f"sqlite:///{tmp_path / 'app.sqlite3'}"
    assert env["ISSUER_SMTP_URL"] == "smtp://127.0.0.1:8025"
    assert env["ISSUER_OUTBOX_DIR"] == str(tmp_path / "mail")
    assert [s.name for s in supervisor.services(env)] == ["mail", "issuer", "proxy", "app"]
    assert supervisor.services(env)[3].port == 9000


def test_a_mail_server_of_the_operators_replaces_the_local_one(tmp_path):
    env = supervisor.stack_env({"ISSUER_SMTP_URL": "smtps://mail.example"}, tmp_path)
    assert env["ISSUER_SMTP_URL"] == "smtps://mail.example"
    assert "ISSUER_OUTBOX_DIR" not in env
    assert [s.name for s in supervisor.services(env)] == ["issuer", "proxy", "app"]


def test_a_registration_without_the_database_gets_it_in_place(engine, path):
    """Release 0.1 registered the app without audiences: the upgrade keeps its secret
    (and so its users' refresh tokens) and allows it the database audience."""
    first, _ = app_client.ensure(engine, APP_URL, path)
    clients.set_audiences(engine, app_client.CLIENT_ID, ())
    again, change = app_client.ensure(engine, APP_URL, path, "urn:example:db")
    assert again == first
    assert change is not None and "urn:example:db" in change
    (client,) = registered(engine)
    assert client.audiences == ("urn:example:db",)
    assert client.check_client_secret(first.client_secret)


def test_the_proxy_requires_the_audience_the_issuer_grants_and_the_app_asks_for(tmp_path):
    """`make run` as the README's Neon steps: one audience, required by the database."""
    for given in ({}, {"ISSUER_DATABASE_AUDIENCE": "urn:example:neondb"}):
        env = supervisor.stack_env({**given, "PROXY_DATABASE_HOST": "/tmp"}, tmp_path)
        issuer = Config.from_env(env)
        (rule,) = ProxyConfig.from_env(env).auth_rules
        app = AppConfig(database_audience=env["APP_DATABASE_AUDIENCE"])
        assert rule.audience == issuer.database_audience == app.database_audience
        assert rule.audience == given.get("ISSUER_DATABASE_AUDIENCE", AUDIENCE)
    readme = (ROOT / "README.md").read_text()
    assert "ISSUER_DATABASE_AUDIENCE" in readme
    assert "The audience is required" in readme


def test_operator_settings_win_over_derived_ones(tmp_path):
    given = {
        "ISSUER_URL": "https://login.example",
        "APP_URL": "https://todo.example",
        "NEON_HTTP_ENDPOINT": "https://apiauth.example/sql",
        "APP_DATA_API_URL": "https://ep-x.example/neondb/rest/v1",
    }
    env = supervisor.stack_env(given, tmp_path)
    assert {name: env[name] for name in given} == given


def without_database_url() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}


def test_neon_setup_refuses_to_run_without_database_url(tmp_path):
    # From an empty directory, so that no developer's .env is read.
    done = subprocess.run(
        [sys.executable, "-m", "stack", "neon-setup"],
        cwd=tmp_path,
        env={**without_database_url(), "DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [], "nothing local was started or migrated"


def test_make_neon_setup_is_the_stack_command():
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", "neon-setup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip().endswith("-m stack neon-setup")


def test_migrate_refuses_an_empty_database_url(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "stack", "migrate", "--database-url", " "],
        env={**without_database_url(), "DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--database-url is empty" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://nobody:hunter2@127.0.0.1:1/issuer", "the issuer's database: connection"),
        ("mysql://nobody:hunter2@127.0.0.1/issuer", "unsupported database URL scheme"),
    ],
)
def test_an_unusable_issuer_database_is_a_clear_error_without_its_password(url, message):
    with pytest.raises(click.ClickException) as refused:
        supervisor.issuer_engine(Config(database_url=url))
    assert message in refused.value.format_message()
    assert "hunter2" not in refused.value.format_message()


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1:8001", "http://localhost:8001"),
        # Elsewhere `localhost` would lead clients to a port of 127.0.0.1 that is not ours.
        ("[::1]:8001", "http://[::1]:8001"),
        ("127.0.0.2:8001", "http://127.0.0.2:8001"),
        ("10.1.2.3:8001", "http://10.1.2.3:8001"),
    ],
)
def test_127_0_0_1_binds_are_published_as_localhost(bind: str, url: str) -> None:
    assert supervisor.public_url(bind) == url


def test_the_move_to_localhost_keeps_the_secret_and_the_refresh_tokens(engine, path):
    """`make run` now publishes loopback binds as `localhost`: an installation made for
    127.0.0.1 keeps its client secret, so its users stay signed in."""
    first, _ = app_client.ensure(engine, "http://127.0.0.1:8000", path)
    second, change = app_client.ensure(engine, APP_URL, path)
    assert change is not None and "same secret" in change
    assert second == first
    (client,) = registered(engine)
    assert client.check_client_secret(first.client_secret)
    assert client.redirect_uris == ("http://localhost:8000/auth/callback",)
    assert client.post_logout_redirect_uris == ("http://localhost:8000/",)
    assert client.audiences == (AUDIENCE,)


@pytest.mark.parametrize("moved_to", ["http://localhost:9999", "http://localhost:8000/todo"])
def test_another_port_or_path_on_this_machine_is_a_new_registration(engine, path, moved_to):
    first, _ = app_client.ensure(engine, "http://127.0.0.1:8000", path)
    second, change = app_client.ensure(engine, moved_to, path)
    assert change is not None and "re-registered" in change
    assert second.client_secret != first.client_secret
