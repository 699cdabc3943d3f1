"""`python -m issuer clients add|list|remove` and `clients.replace`, through click's runner,
the real /token endpoint and one real subprocess."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from issuer import create_app
from issuer.db import get_engine
from issuer.oauth import clients
from issuer.oauth.clients import ClientError, Registration, clients_table
from issuer.oauth.codes import codes_table
from issuer.oauth.refresh_tokens import refresh_tokens_table
from tests.issuer import oauth_flows as flows


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


def issue_refresh_token(app, client, secret: str) -> str:
    """A refresh token issued to `client` for alice through the real endpoints."""
    flows.make_user(app)
    browser = app.test_client()
    flows.log_in(browser, "alice@example.com")
    code, verifier = flows.get_code(browser, client, scope="openid email")
    token = flows.redeem(browser, client, code, verifier, secret=secret)
    assert token.status_code == 200, token.text
    return token.json["refresh_token"]


def refresh_with(app, client_id: str, secret: str, refresh_token: str):
    # A fresh app: the issuer's client cache would hide a change for a few seconds.
    return app.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=flows.basic(client_id, secret),
    )


def test_remove_deletes_the_client_and_what_it_was_issued_only(oauth_app, issuer_config):
    client, secret = flows.register(oauth_app, client_id="todo-app", first_party=True)
    other, other_secret = flows.register(oauth_app, client_id="other-app", first_party=True)
    refresh_token = issue_refresh_token(oauth_app, client, secret)
    browser = oauth_app.test_client()
    flows.log_in(browser, "alice@example.com")
    other_code, _ = flows.get_code(browser, other)
    pending_code, _ = flows.get_code(browser, client)

    result = run(oauth_app, "remove", "todo-app", "--yes")
    assert result.exit_code == 0, result.output
    assert [row.client_id for row in stored(oauth_app)] == ["other-app"]
    with oauth_app.app_context(), get_engine().connect() as conn:
        assert conn.execute(select(refresh_tokens_table)).all() == []
        codes = conn.execute(select(codes_table.c.client_id)).scalars().all()
    assert codes == ["other-app"], "only the removed client's codes are deleted"
    fresh = create_app(issuer_config)
    refused = refresh_with(fresh, "todo-app", secret, refresh_token)
    assert refused.status_code == 401, refused.text
    assert pending_code and other_code and other_secret


def test_remove_asks_first_and_refuses_unknown_clients(oauth_app):
    flows.register(oauth_app, client_id="todo-app")
    declined = oauth_app.test_cli_runner().invoke(
        args=["clients", "remove", "todo-app"], input="n\n"
    )
    assert declined.exit_code != 0
    assert [row.client_id for row in stored(oauth_app)] == ["todo-app"]
    unknown = run(oauth_app, "remove", "nobody", "--yes")
    assert unknown.exit_code != 0
    assert "no client 'nobody'" in unknown.output
    assert "Traceback" not in unknown.output
    assert [row.client_id for row in stored(oauth_app)] == ["todo-app"]


def test_replace_gives_a_new_secret_and_voids_the_former_refresh_tokens(oauth_app, issuer_config):
    client, old_secret = flows.register(oauth_app, client_id="todo-app", first_party=True)
    refresh_token = issue_refresh_token(oauth_app, client, old_secret)
    moved = Registration(
        name="Todo app",
        redirect_uris=("https://todo.example/auth/callback",),
        first_party=True,
        client_id="todo-app",
    )
    with oauth_app.app_context():
        replaced, new_secret = clients.replace(get_engine(), moved)
    assert new_secret and new_secret != old_secret
    assert replaced.redirect_uris == ("https://todo.example/auth/callback",)
    (row,) = stored(oauth_app)
    assert row.secret_digest == hashlib.sha256(new_secret.encode()).hexdigest()
    fresh = create_app(issuer_config)
    # Neither the old secret nor the new one revives a token issued before.
    assert refresh_with(fresh, "todo-app", old_secret, refresh_token).status_code == 401
    stale = refresh_with(fresh, "todo-app", new_secret, refresh_token)
    assert stale.status_code == 400
    assert stale.json["error"] == "invalid_grant"


def test_a_refused_replacement_keeps_the_former_client(oauth_app):
    flows.register(oauth_app, client_id="todo-app")
    before = stored(oauth_app)
    bad = Registration(
        name="Todo app", redirect_uris=("http://todo.example/cb",), client_id="todo-app"
    )
    with oauth_app.app_context(), pytest.raises(ClientError, match="https"):
        clients.replace(get_engine(), bad)
    with oauth_app.app_context(), pytest.raises(ClientError, match="client id"):
        clients.replace(get_engine(), Registration(name="x", redirect_uris=(flows.REDIRECT_URI,)))
    assert stored(oauth_app) == before


def test_audiences_are_none_by_default_and_given_at_registration(oauth_app):
    plain = run(oauth_app, "add", "--name", "Plain", "--client-id", "plain-app",
                "--redirect-uri", "http://127.0.0.1:8000/cb")  # fmt: skip
    assert plain.exit_code == 0, plain.output
    allowed = run(oauth_app, "add", "--name", "Worker", "--client-id", "db-worker",
                  "--grant-type", "client_credentials", "--audience", "urn:neon:database")  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    with oauth_app.app_context():
        assert clients.load(get_engine(), "plain-app").audiences == ()
        assert clients.load(get_engine(), "db-worker").audiences == ("urn:neon:database",)
    listing = run(oauth_app, "list").output.splitlines()
    assert any(line.startswith("db-worker\t") and "urn:neon:database" in line for line in listing)


def test_audiences_command_sets_them_and_keeps_the_secret(oauth_app):
    added = run(oauth_app, "add", "--name", "Worker", "--client-id", "svc",
                "--grant-type", "client_credentials")  # fmt: skip
    secret = dict(line.split(": ", 1) for line in added.output.splitlines() if ": " in line)[
        "client_secret"
    ]
    result = run(oauth_app, "audiences", "svc", "urn:neon:database", "https://api.example")
    assert result.exit_code == 0, result.output
    assert "urn:neon:database, https://api.example" in result.output
    cleared = run(oauth_app, "audiences", "svc")
    assert cleared.exit_code == 0 and "sign-in only" in cleared.output
    with oauth_app.app_context():
        client = clients.load(get_engine(), "svc")
    assert client.audiences == () and client.check_client_secret(secret)


@pytest.mark.parametrize("audience", ["database", "urn:x#frag", "has space:x"])
def test_a_bad_audience_is_a_usage_error_and_nothing_changes(oauth_app, audience):
    result = run(oauth_app, "add", "--name", "W", "--grant-type", "client_credentials",
                 "--audience", audience)  # fmt: skip
    assert result.exit_code == 2 and "audience" in result.output
    assert stored(oauth_app) == []
    run(oauth_app, "add", "--name", "W", "--client-id", "svc", "--grant-type", "client_credentials")
    changed = run(oauth_app, "audiences", "svc", "urn:ok:db", audience)
    assert changed.exit_code == 2
    with oauth_app.app_context():
        assert clients.load(get_engine(), "svc").audiences == ()
    assert run(oauth_app, "audiences", "nobody", "urn:ok:db").exit_code == 1


@pytest.mark.parametrize(
    "uri",
    [
        "https://a.example;b.example/cb",
        "https://a.example,evil.example/cb",
        "https://user@a.example/cb",
        "https://user:pw@a.example/cb",
    ],
)
def test_a_redirect_uri_host_that_is_not_plain_is_refused(uri: str) -> None:
    """Its origin goes into the pages' Content-Security-Policy: nothing may split it."""
    with pytest.raises(ClientError, match="plain host"):
        clients.validate_redirect_uri(uri)
