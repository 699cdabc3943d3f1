"""`python -m issuer serve` refuses a bad setting before any worker starts: one line,
exit 1, no traceback; behind trusted proxies no client header passes for theirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from issuer.keys import KeyRing
from issuer.server import served_app
from tests.issuer.served_issuer import served_issuer


def test_a_bad_setting_stops_serve_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "ISSUER_DATA_DIR": str(tmp_path), "ISSUER_ROTATION_PERIOD": "5"}
    done = subprocess.run(
        [sys.executable, "-m", "issuer", "serve", "--bind", "127.0.0.1:1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ISSUER_ROTATION_PERIOD (5 s) must be 0 or at least")
    assert "Traceback" not in done.stderr


def test_a_bad_bind_stops_serve_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "ISSUER_DATA_DIR": str(tmp_path), "ISSUER_BIND": "8001"}
    done = subprocess.run(
        [sys.executable, "-m", "issuer", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (
        1,
        "Error: ISSUER_BIND must be host:port, not '8001'\n",
    )


@pytest.fixture
def issuer_home(tmp_path: Path) -> dict[str, str]:
    """Settings of an issuer in `tmp_path`, its key ring created."""
    keys = tmp_path / "keys"
    KeyRing(keys).init()
    return {
        "ISSUER_KEYS_DIR": str(keys),
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        "ISSUER_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.mark.parametrize("underscore_first", [True, False])
def test_behind_trusted_proxies_no_client_header_passes_for_theirs(
    tmp_path: Path, issuer_home: dict[str, str], underscore_first: bool
) -> None:
    """With ISSUER_TRUSTED_PROXIES the address the throttles (and /outbox) see comes
    from X-Forwarded-For: a client's `X_Forwarded_For` must not stand in for it in
    either order (granian maps both names to one variable; the issuer then serves on
    gunicorn, which drops names with underscores)."""
    settings = {
        **issuer_home,
        "ISSUER_TRUSTED_PROXIES": "1",
        "ISSUER_OUTBOX_DIR": str(tmp_path / "mail"),
    }
    forged = [("X_Forwarded_For", "127.0.0.1"), ("X-Forwarded-For", "203.0.113.5")]
    headers = dict(forged if underscore_first else forged[::-1])
    with served_issuer(tmp_path, **settings) as base:
        assert requests.get(f"{base}/outbox", timeout=10).status_code == 200  # loopback
        assert requests.get(f"{base}/outbox", headers=headers, timeout=10).status_code == 404


def test_the_process_environment_never_reads_as_a_request_header(
    tmp_path: Path, issuer_home: dict[str, str]
) -> None:
    """granian starts each request's environ from the process environment: a variable
    named like a header (here HTTP_X_REQUEST_ID) must not pass for one."""
    settings = {**issuer_home, "HTTP_X_REQUEST_ID": "planted-by-the-environment"}
    with served_issuer(tmp_path, **settings) as base:
        answer = requests.get(f"{base}/.well-known/openid-configuration", timeout=10)
        assert answer.headers["X-Request-Id"] != "planted-by-the-environment"
        given = requests.get(
            f"{base}/.well-known/openid-configuration",
            headers={"X-Request-Id": "from-the-client"},
            timeout=10,
        )
        assert given.headers["X-Request-Id"] == "from-the-client"


def test_a_second_issuer_on_the_same_port_is_refused(
    tmp_path: Path, issuer_home: dict[str, str]
) -> None:
    """granian's workers share their port: without a check, a second instance (an old
    version still running) would start and take a share of the requests."""
    settings = issuer_home
    with served_issuer(tmp_path, **settings) as base:
        port = base.rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "issuer", "serve", "--bind", f"127.0.0.1:{port}"],
            env={**os.environ, **settings, "ISSUER_URL": base},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert (second.returncode, second.stderr) == (
        1,
        f"Error: 127.0.0.1:{port} is in use by another process\n",
    )


def test_gunicorn_takes_no_script_name_from_a_header(
    tmp_path: Path, issuer_home: dict[str, str]
) -> None:
    """gunicorn lets loopback peers (a reverse proxy on the host) set SCRIPT_NAME by a
    `Script_Name` header by default: `/x/metrics` would reach `/metrics` past a proxy
    rule that blocks `/metrics`."""
    with served_issuer(tmp_path, conf=True, **issuer_home) as base:
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 200
        answer = requests.get(f"{base}/x/metrics", headers={"Script_Name": "/x"}, timeout=10)
        assert answer.status_code == 404


def test_behind_trusted_proxies_granian_is_refused_even_by_hand(
    issuer_home: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`issuer.server:served_app` is granian's factory: started by hand with trusted
    proxies, it refuses rather than serve a spoofable X-Forwarded-For."""
    for name, value in {**issuer_home, "ISSUER_TRUSTED_PROXIES": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match="ISSUER_TRUSTED_PROXIES is set"):
        served_app()


@pytest.mark.parametrize("conf", [False, True], ids=["granian", "gunicorn"])
def test_chunked_token_requests_are_read_whole_or_refused(
    tmp_path: Path, issuer_home: dict[str, str], conf: bool
) -> None:
    """Both servers end a chunked body's stream themselves: /token reads it to its end
    (the grant is found, then the missing client refused) or, past 8 KiB, refuses it
    rather than reading the first 8 KiB as if they were all."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def chunked(body: bytes):
        return (body[i : i + 1000] for i in range(0, len(body), 1000))

    padded = b"grant_type=client_credentials&pad=".ljust(8192, b"a")
    with served_issuer(tmp_path, conf=conf, **issuer_home) as base:
        read = requests.post(f"{base}/token", data=chunked(padded), headers=form, timeout=10)
        assert (read.status_code, read.json()["error"]) == (401, "invalid_client")
        over = requests.post(
            f"{base}/token", data=chunked(padded + b"&grant_type=x"), headers=form, timeout=10
        )
        assert (over.status_code, over.json()["error"]) == (413, "invalid_request")
