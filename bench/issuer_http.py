"""The issuer over HTTP, as production serves it (`python -m issuer serve`: granian).

Figures (wrk, 16 connections, 2 threads; the issuer on 127.0.0.1):
- POST /token (client_credentials, an ES256 JWT per request): requests/s and p99.
- GET /.well-known/jwks.json, fresh (200) and revalidated (If-None-Match -> 304).
- CPU time the server's processes spent per request: unlike requests/s, it
  hardly moves when other work shares the machine (wrk itself runs on the same
  two cores), so it is the figure to compare configurations and changes by.
Baseline for each: a constant-response WSGI callable served by granian with the same
workers and threads in the same run, the server's own ceiling on this machine.
`wrk` comes from Debian (`apt-get install -y wrk`); the suite installs it when missing.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import statistics
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

from bench import peer
from bench.report import Figure

SECONDS = 5
#: A first run discarded per server: the first seconds after a start (imports on first
#: use, connection pools filling, V8 optimizing) are slower for both and not what we compare.
WARM_UP_SECONDS = 2
RUNS = 3
CONNECTIONS = 16
SUITE = "issuer_http"
PEER = "node-oidc-provider 9 (2 workers)"
JWKS_PATH = "/.well-known/jwks.json"


def constant_app(environ, start_response):
    """The baseline: what the server alone can serve, no Flask, no work."""
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
    """User + system CPU time of `pid` and its children (the server and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for process in [pid, *map(int, children)]:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def _served(env: dict[str, str], constant: bool = False) -> Iterator[Server]:
    """`python -m issuer serve` on a free port, or (`constant`) granian serving
    `constant_app` with the same workers and threads."""
    port = _free_port()
    if constant:
        command = [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", "2",
            "--blocking-threads", "4", "--log-level", "warning",
            "--host", "127.0.0.1", "--port", str(port), "bench.issuer_http:constant_app",
        ]  # fmt: skip
    else:
        command = [sys.executable, "-m", "issuer", "serve", "--bind", f"127.0.0.1:{port}"]
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
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _measure(
    server: Server,
    path: str,
    script: Path | None = None,
    *,
    status: str = "2xx",
    seconds: int = SECONDS,
) -> tuple[float, float, float]:
    """(requests/s, p99 in ms, server CPU us per request) from one wrk run; wrk counts
    anything but 2xx as an error, so a run expecting 304 checks the status on its own first."""
    command = [_wrk(), "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    cpu_before = _cpu_seconds(server.pid)
    out = subprocess.run(
        [*command, server.url + path], check=True, capture_output=True, text=True,
        timeout=seconds + 60,
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
        with _served(env, constant=True) as server:
            ceiling = _measure(server, "/")
        runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        peer_port = _free_port()
        with _served(env) as ours, peer.serve(client_id, secret, peer_port) as peer_pid:
            theirs = Server(f"http://127.0.0.1:{peer_port}", peer_pid)
            for server in (ours, theirs):
                _measure(server, "/token", token_script, seconds=WARM_UP_SECONDS)
            # Alternating, so that whatever else loads the machine hits both alike.
            for _ in range(RUNS):
                for who, server, jwks_path in (
                    ("ours", ours, JWKS_PATH),
                    ("peer", theirs, peer.JWKS_PATH),
                ):
                    runs.setdefault((who, "token"), []).append(
                        _measure(server, "/token", token_script)
                    )
                    runs.setdefault((who, "jwks"), []).append(_measure(server, jwks_path))
            revalidated = _revalidated(ours, root)
    return [*_against_peer(runs), *_against_constant(runs, revalidated, ceiling)]


def _revalidated(server: Server, root: Path) -> tuple[float, float, float]:
    """GET jwks.json with the current ETag: 304 every time."""
    jwks_url = server.url + JWKS_PATH
    with urllib.request.urlopen(jwks_url, timeout=5) as response:
        etag = response.headers["ETag"]
    request = urllib.request.Request(jwks_url, headers={"If-None-Match": etag})
    try:
        urllib.request.urlopen(request, timeout=5)
        raise RuntimeError("the JWKS endpoint ignored If-None-Match")
    except urllib.error.HTTPError as error:
        if error.code != 304:
            raise
    script = _lua(root / "jwks304.lua", "GET", {"If-None-Match": etag})
    return _measure(server, JWKS_PATH, script, status="304")


def _spread(values: list[float]) -> float:
    """(max - min) / median: how far one run may land from another."""
    return (max(values) - min(values)) / statistics.median(values)


def _against_peer(runs: dict[tuple[str, str], list[tuple[float, float, float]]]) -> list[Figure]:
    """The issue-14 targets: at least the peer's rate, steadily."""
    figures = []
    for what, name, target in (
        ("token", "POST /token client_credentials", ">= 1.0"),
        ("jwks", "GET jwks.json 200", ">= 1.5"),
    ):
        ours, theirs = runs[("ours", what)], runs[("peer", what)]
        rates = [r for r, _, _ in ours], [r for r, _, _ in theirs]
        figures += [
            Figure(SUITE, f"{name} req/s, median of {RUNS}", "req/s",
                   statistics.median(rates[0]), PEER, statistics.median(rates[1]), target),
            Figure(SUITE, f"{name} spread of req/s over {RUNS} runs", "x median",
                   _spread(rates[0]), PEER, _spread(rates[1]), "<= 2 (twice the peer's)"),
            Figure(SUITE, f"{name} p99, median", "ms", statistics.median(p for _, p, _ in ours),
                   PEER, statistics.median(p for _, p, _ in theirs), "report"),
            Figure(SUITE, f"{name} server CPU, median", "us/req",
                   statistics.median(c for _, _, c in ours), PEER,
                   statistics.median(c for _, _, c in theirs), "report"),
        ]  # fmt: skip
    return figures


def _against_constant(
    runs: dict[tuple[str, str], list[tuple[float, float, float]]],
    revalidated: tuple[float, float, float],
    ceiling: tuple[float, float, float],
) -> list[Figure]:
    """Server CPU per request against the server's own floor, the steadier figure."""
    cpu = {
        "POST /token client_credentials": statistics.median(
            c for _, _, c in runs[("ours", "token")]
        ),
        "GET jwks.json 200": statistics.median(c for _, _, c in runs[("ours", "jwks")]),
        "GET jwks.json 304": revalidated[2],
    }
    figures = [
        Figure(SUITE, f"{name} server CPU", "us/req", value, "constant WSGI", ceiling[2], "report")
        for name, value in cpu.items()
    ]
    figures.append(
        Figure(SUITE, "GET jwks.json 304 req/s", "req/s", revalidated[0], "constant WSGI",
               ceiling[0], "report")
    )  # fmt: skip
    return figures
