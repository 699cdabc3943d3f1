"""`python -m stack neon-register` and `neon-data-api` against a stand-in of Neon's API:
once, and clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.neon_api import NeonAPIStandIn
from tests.support.servers import LiveServer

PROJECT = "holy-moon-123456"
ISSUER = "https://login.example.com"


@pytest.fixture
def neon() -> Iterator[tuple[NeonAPIStandIn, LiveServer]]:
    stand_in = NeonAPIStandIn(api_key="napi_test_key", projects={PROJECT})
    server = stand_in.serve()
    yield stand_in, server
    server.stop()


def register(
    server: LiveServer, tmp_path: Path, *args: str, command: str = "neon-register", **env: str
) -> subprocess.CompletedProcess:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEON_", "ISSUER_", "DATABASE_"))
    }
    environ.update(
        {
            "NEON_API_URL": f"{server.url}/api/v2",
            "NEON_API_KEY": "napi_test_key",
            "ISSUER_URL": ISSUER,
            "ISSUER_DATABASE_AUDIENCE": "urn:neon:todos",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "stack", command, *args],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_first_run_registers_and_the_second_changes_nothing(neon, tmp_path: Path) -> None:
    stand_in, server = neon
    first = register(server, tmp_path, "--project-id", PROJECT)
    assert first.returncode == 0, first.stderr
    assert "registered for Neon project" in first.stdout
    (entry,) = stand_in.registrations[PROJECT]
    assert entry["jwks_url"] == f"{ISSUER}/.well-known/jwks.json"
    assert entry["jwt_audience"] == "urn:neon:todos"
    second = register(server, tmp_path, "--project-id", PROJECT)
    assert second.returncode == 0, second.stderr
    assert "already registered, unchanged" in second.stdout
    assert len(stand_in.registrations[PROJECT]) == 1
    assert [method for method, _ in stand_in.calls].count("POST") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"NEON_API_KEY": "wrong"}, "HTTP 401: authorization failed"),
        ({"NEON_API_KEY": ""}, "set NEON_API_KEY"),
        ({"ISSUER_URL": "http://127.0.0.1:8001"}, "Neon fetches the JWKS over HTTPS"),
        ({"ISSUER_URL": "not a url"}, "ISSUER_URL must be an absolute"),
    ],
)
def test_refusals_are_one_line_and_exit_non_zero(
    neon, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    stand_in, server = neon
    result = register(server, tmp_path, "--project-id", PROJECT, **change)
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "napi_test_key" not in result.stderr
    assert stand_in.registrations.get(PROJECT, []) == []


def test_an_unknown_project_an_outage_and_an_unreachable_api(neon, tmp_path: Path) -> None:
    stand_in, server = neon
    unknown = register(server, tmp_path, "--project-id", "no-such-project")
    assert unknown.returncode == 1 and "HTTP 404: project not found" in unknown.stderr
    stand_in.fail_with = 503
    down = register(server, tmp_path, "--project-id", PROJECT)
    assert down.returncode == 1 and "HTTP 503" in down.stderr
    stand_in.fail_with = None
    gone = register(
        server, tmp_path, "--project-id", PROJECT, NEON_API_URL="http://127.0.0.1:9/api/v2"
    )
    assert gone.returncode == 1 and "cannot reach Neon's API" in gone.stderr


def test_a_url_registered_with_another_audience_is_not_changed(neon, tmp_path: Path) -> None:
    stand_in, server = neon
    assert register(server, tmp_path, "--project-id", PROJECT).returncode == 0
    other = register(
        server, tmp_path, "--project-id", PROJECT, ISSUER_DATABASE_AUDIENCE="urn:neon:other"
    )
    assert other.returncode == 1
    assert "registered with audience 'urn:neon:todos'" in other.stderr
    assert [e["jwt_audience"] for e in stand_in.registrations[PROJECT]] == ["urn:neon:todos"]


def data_api(server: LiveServer, tmp_path: Path, *args: str, **env: str):
    return register(server, tmp_path, *args, command="neon-data-api", **env)


def test_the_data_api_is_enabled_once_for_the_issuer_on_the_default_branch(
    neon, tmp_path: Path
) -> None:
    stand_in, server = neon
    first = data_api(server, tmp_path, "--project-id", PROJECT)
    assert first.returncode == 0, first.stderr
    url = "https://ep-br-main-100.apirest.c-2.us-east-2.aws.neon.tech/neondb/rest/v1"
    assert f"Data API for neondb on branch br-main-100 enabled: {url}" in first.stdout
    assert f"APP_DATA_API_URL={url}" in first.stdout
    assert stand_in.data_apis == {
        (PROJECT, "br-main-100", "neondb"): {
            "auth_provider": "external",
            "jwks_url": f"{ISSUER}/.well-known/jwks.json",
            "provider_name": "own-login",
            "jwt_audience": "urn:neon:todos",
            "add_default_grants": False,
            "skip_auth_schema": True,
        }
    }
    second = data_api(server, tmp_path, "--project-id", PROJECT)
    assert second.returncode == 0, second.stderr
    assert "already enabled, unchanged" in second.stdout
    assert [method for method, _ in stand_in.calls].count("POST") == 1

    other = data_api(
        server, tmp_path, "--project-id", PROJECT, "--branch-id", "br-dev-200", "--database", "app"
    )
    assert other.returncode == 0, other.stderr
    assert (PROJECT, "br-dev-200", "app") in stand_in.data_apis


def test_data_api_refusals_are_one_line_and_change_nothing(neon, tmp_path: Path) -> None:
    stand_in, server = neon
    for args, env, message in (
        (("--branch-id", "br-nope"), {}, "HTTP 404: branch not found"),
        ((), {"NEON_API_KEY": "wrong"}, "HTTP 401: authorization failed"),
        ((), {"ISSUER_URL": "http://127.0.0.1:8001"}, "Neon fetches the JWKS over HTTPS"),
    ):
        result = data_api(server, tmp_path, "--project-id", PROJECT, *args, **env)
        assert result.returncode in (1, 2), result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
    assert stand_in.data_apis == {}


def test_neon_setup_data_api_needs_the_api_before_touching_the_database(
    neon, tmp_path: Path
) -> None:
    _, server = neon
    result = register(
        server,
        tmp_path,
        "--data-api",
        command="neon-setup",
        NEON_API_KEY="",
        DATABASE_URL="postgresql://neondb_owner:pw@127.0.0.1:9/neondb",
    )
    assert result.returncode == 2
    assert "--data-api needs NEON_API_KEY and NEON_PROJECT_ID" in result.stderr
    assert "migrated" not in result.stdout
