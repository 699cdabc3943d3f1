"""The issuer over HTTP, under its production server configuration (issuer/gunicorn_conf.py).

Figures (wrk, 16 connections, 2 threads; the issuer on 127.0.0.1):
- POST /token (client_credentials, an ES256 JWT per request): requests/s and p99.
- GET /.well-known/jwks.json, fresh (200) and revalidated (If-None-Match -> 304).
- CPU time the server's processes spent per request: unlike requests/s, it
  hardly moves when other work shares the machine (wrk itself runs on the same
  two cores), so it is the figure to compare configurations and changes by.
Baseline for each: a constant-response WSGI callable served by the same gunicorn
configuration in the same run, the server's own ceiling on this machine.
`wrk` comes from Debian (`apt-get install -y wrk`); the suite installs it when missing.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.report import Figure

SECONDS = 8
CONNECTIONS = 16
JWKS_PATH = "/.well-known/jwks.json"


def constant_app(environ, start_response):
    """The baseline: what gunicorn alone can serve, no Flask, no work."""
    body = b'{"ok":true}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")])
    return [body]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True, timeout=300
        )
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed and could not be installed")
    return found


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its children (gunicorn's master and workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for process in [pid, *map(int, children)]:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def _gunicorn(env: dict[str, str], app: str | None = None) -> Iterator[Server]:
    """gunicorn with the issuer's config on a free port."""
    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "-c", "python:issuer.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}",
    ]  # fmt: skip
    if app is not None:
        command.append(app)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # the server answers (404 is fine)
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _measure(
    server: Server, path: str, script: Path | None = None, *, status: str = "2xx"
) -> tuple[float, float, float]:
    """(requests/s, p99 in ms, server CPU us per request) from one wrk run; wrk counts
    anything but 2xx as an error, so a run expecting 304 checks the status on its own first."""
    command = [_wrk(), "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    cpu_before = _cpu_seconds(server.pid)
    out = subprocess.run(
        [*command, server.url + path], check=True, capture_output=True, text=True,
        timeout=SECONDS + 60,
    ).stdout  # fmt: skip
    cpu = _cpu_seconds(server.pid) - cpu_before
    if status == "2xx" and "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error responses from {path}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99, cpu / requests * 1e6


def _lua(path: Path, method: str, headers: dict[str, str], body: str | None = None) -> Path:
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if body is not None:
        lines.append(f'wrk.body = "{body}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def _service_client(env: dict[str, str]) -> tuple[str, str]:
    from issuer import create_app
    from issuer.config import Config
    from issuer.db import get_engine
    from issuer.keys import KeyRing
    from issuer.oauth import clients

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        config = Config.from_env()
        KeyRing(config.keys_dir).init()
        app = create_app(config)
        with app.app_context():
            client, secret = clients.register(
                get_engine(),
                clients.Registration(name="bench", grant_types=("client_credentials",)),
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return client.client_id, secret


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {
            **os.environ,
            "ISSUER_KEYS_DIR": str(root / "keys"),
            "ISSUER_DATABASE_URL": f"sqlite:///{root / 'issuer.sqlite3'}",
            "ISSUER_DATA_DIR": str(root / "data"),
            "ISSUER_SECRET_KEY": "bench-only",
        }
        client_id, secret = _service_client(env)
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        token_script = _lua(
            root / "token.lua",
            "POST",
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Basic {basic}",
            },
            "grant_type=client_credentials",
        )
        with _gunicorn(env, "bench.issuer_http:constant_app") as server:
            ceiling = _measure(server, "/")
        with _gunicorn(env) as server:
            token = _measure(server, "/token", token_script)
            jwks_url = server.url + JWKS_PATH
            with urllib.request.urlopen(jwks_url, timeout=5) as response:
                etag = response.headers["ETag"]
            fresh = _measure(server, JWKS_PATH)
            request = urllib.request.Request(jwks_url, headers={"If-None-Match": etag})
            try:
                urllib.request.urlopen(request, timeout=5)
                raise RuntimeError("the JWKS endpoint ignored If-None-Match")
            except urllib.error.HTTPError as error:
                if error.code != 304:
                    raise
            revalidated = _measure(
                server,
                JWKS_PATH,
                _lua(root / "jwks304.lua", "GET", {"If-None-Match": etag}),
                status="304",
            )
    figures = []
    # Server CPU per request, relative to the constant app: the signature and the
    # OAuth machinery cost /token its multiple; the JWKS should cost next to nothing.
    cpu_targets = {"POST /token client_credentials": "<= 2"}
    for name, (rps, p99, cpu) in [
        ("POST /token client_credentials", token),
        ("GET jwks.json 200", fresh),
        ("GET jwks.json 304", revalidated),
    ]:
        figures.append(
            Figure("issuer_http", f"{name} req/s", "req/s", rps, "constant WSGI", ceiling[0],
                   ">= 0.5 (Node OIDC: token ~7k, jwks ~30k req/s)")
        )  # fmt: skip
        figures.append(
            Figure("issuer_http", f"{name} p99", "ms", p99, "constant WSGI", ceiling[1], "<= 3")
        )
        figures.append(
            Figure("issuer_http", f"{name} server CPU", "us/req", cpu, "constant WSGI",
                   ceiling[2], cpu_targets.get(name, "<= 1.2"))
        )  # fmt: skip
    return figures
