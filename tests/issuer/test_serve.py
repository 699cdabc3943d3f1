"""`python -m issuer serve` refuses a bad setting before any worker starts: one line,
exit 1, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
