"""The issuer as production runs it, for the tests that need real worker processes:
`python -m issuer serve`, or gunicorn with `issuer.gunicorn_conf` (the same settings)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port
from tests.support.servers import stop_server, wait_answering


@contextmanager
def served_issuer(cwd: Path, *, conf: bool = False, **settings: str) -> Iterator[str]:
    """Serve the issuer with `settings` (ISSUER_* variables) on a free port until
    the block ends (by `serve`, or by gunicorn's own command when `conf`); yields
    its base URL once `/readyz` answers 200."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(ISSUER_URL=base, ISSUER_BIND=f"127.0.0.1:{port}", **settings)
    argv = ["gunicorn", "-c", "python:issuer.gunicorn_conf"] if conf else ["issuer", "serve"]
    process = subprocess.Popen(
        [sys.executable, "-m", *argv],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_answering(base + "/readyz", process, status=200)
        yield base
    finally:
        stop_server(process)
