"""Serving a WSGI app in production with granian, the same way for every service.

granian (HTTP in Rust, the app in a pool of blocking threads per worker process)
was chosen over gunicorn's gthread worker by measurement: see issuer/server.py and
bench/proxy.py. Workers are forked from the calling process, so whatever it set up
before (a proxy's session key) they inherit; they share one metrics directory.
"""

from __future__ import annotations

from pathlib import Path

from envsettings import SettingError
from servicemetrics import shared_directory


def split_bind(name: str, bind: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) as granian takes it; `name` is the setting."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingError(f"{name} must be host:port, not {bind!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def serve_wsgi(
    factory: str,
    host: str,
    port: int,
    *,
    workers: int,
    threads: int,
    access_log: bool = False,
) -> None:
    """Serve the app `factory` ("module:function", called once in each worker) until
    SIGTERM or SIGINT."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    with shared_directory():
        Granian(
            factory,
            factory=True,
            address=host,
            port=port,
            interface=Interfaces.WSGI,
            workers=workers,
            blocking_threads=threads,
            # granian's default `backpressure`: set to the thread count, requests of
            # the load test's 16 keep-alive visitors waited past every timeout.
            respawn_failed_workers=True,
            log_level=LogLevels.warning,
            log_access=access_log,
            working_dir=Path.cwd(),
        ).serve()
