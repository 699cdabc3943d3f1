"""panva's node-oidc-provider, the issuer's peer in `make bench` (issue 14).

`make bench` installs it from npm into `bench/peer/` (pinned by its lock file);
`bench/peer/issuer.mjs` configures it as our issuer is configured for the same
figures: client credentials with client_secret_basic, ES256 JWT access tokens for
one audience, one P-256 key, two worker processes (node's cluster), on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).parent / "peer"
JWKS_PATH = "/jwks"
WORKERS = 2


@contextmanager
def serve(client_id: str, client_secret: str, port: int) -> Iterator[int]:
    """The peer on 127.0.0.1:`port`, knowing one client; yields its process id."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError(
            "the peer is not installed: `make bench` installs it (npm ci in bench/peer)"
        )
    env = {
        **os.environ,
        "PORT": str(port),
        "WORKERS": str(WORKERS),
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": client_secret,
    }
    process = subprocess.Popen(
        [node, str(HERE / "issuer.mjs")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + JWKS_PATH, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("node-oidc-provider did not start") from None
                time.sleep(0.2)
        time.sleep(0.5)  # every worker listening, not only the first
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
