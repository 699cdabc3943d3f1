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


@pytest.mark.parametrize("underscore_first", [True, False])
def test_behind_trusted_proxies_no_client_header_passes_for_theirs(
    tmp_path: Path, underscore_first: bool
) -> None:
    """With ISSUER_TRUSTED_PROXIES the address the throttles (and /outbox) see comes
    from X-Forwarded-For: a client's `X_Forwarded_For` must not stand in for it in
    either order (granian maps both names to one variable; the issuer then serves on
    gunicorn, which drops names with underscores)."""
    keys = tmp_path / "keys"
    KeyRing(keys).init()
    settings = {
        "ISSUER_TRUSTED_PROXIES": "1",
        "ISSUER_KEYS_DIR": str(keys),
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        "ISSUER_DATA_DIR": str(tmp_path / "data"),
        "ISSUER_OUTBOX_DIR": str(tmp_path / "mail"),
    }
    forged = [("X_Forwarded_For", "127.0.0.1"), ("X-Forwarded-For", "203.0.113.5")]
    headers = dict(forged if underscore_first else forged[::-1])
    with served_issuer(tmp_path, **settings) as base:
        assert requests.get(f"{base}/outbox", timeout=10).status_code == 200  # loopback
        assert requests.get(f"{base}/outbox", headers=headers, timeout=10).status_code == 404
