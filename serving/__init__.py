"""Serving a WSGI app in production with granian, the same way for every service.

granian (HTTP in Rust, the app in a pool of blocking threads per worker process)
was chosen over gunicorn's gthread worker by measurement: see issuer/server.py and
bench/proxy.py. Workers are forked from the calling process, so the app factory and
whatever it closes over (a proxy's session key) reach them as they are; they share
one metrics directory.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from envsettings import Env, split_bind
from servicemetrics import shared_directory

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Seconds a worker that ignores SIGTERM (a stuck request) gets before it is killed.
KILL_TIMEOUT = 10
#: What `worker_app` builds in each worker: set before the workers are forked.
_factory: Callable[[], Any] | None = None


@dataclass(frozen=True)
class ServeSettings:
    """A service's `<PREFIX>_BIND`, `<PREFIX>_WORKERS` (default: the CPUs) and
    `<PREFIX>_THREADS` (default 4), for granian and for its gunicorn config alike."""

    bind: str
    host: str
    port: int
    workers: int
    threads: int

    @classmethod
    def from_env(
        cls, prefix: str, default_bind: str, environ: Mapping[str, str] | None = None
    ) -> ServeSettings:
        env = Env(environ)
        bind = env.text(f"{prefix}_BIND", default_bind)
        host, port = split_bind(f"{prefix}_BIND", bind)
        return cls(
            bind=bind,
            host=host,
            port=port,
            workers=env.integer(f"{prefix}_WORKERS", os.cpu_count() or 2),
            threads=env.integer(f"{prefix}_THREADS", 4),
        )


def with_options(prefix: str, **given: object) -> dict[str, str]:
    """The process environment with a `serve` command's options (`bind`, `workers`,
    `threads`, when given) in place of their `<PREFIX>_…` settings."""
    environ = dict(os.environ)
    environ.update(
        {f"{prefix}_{name.upper()}": str(v) for name, v in given.items() if v is not None}
    )
    return environ


def serve_wsgi(
    factory: Callable[[], Any],
    host: str,
    port: int,
    *,
    workers: int,
    threads: int,
    access_log: bool = False,
) -> None:
    """Serve the app `factory()` builds (once in each worker) until SIGTERM or SIGINT."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    global _factory
    _factory = factory
    # The workers get the factory by inheritance: forked, whatever the platform's
    # default start method (spawn would leave them without it).
    multiprocessing.set_start_method("fork", force=True)
    _refuse_taken(host, port)
    with shared_directory():
        Granian(
            "serving:worker_app",
            factory=True,
            address=host,
            port=port,
            interface=Interfaces.WSGI,
            workers=workers,
            blocking_threads=threads,
            # granian's default `backpressure`: set to the thread count, requests of
            # the load test's 16 keep-alive visitors waited past every timeout.
            respawn_failed_workers=True,
            workers_kill_timeout=KILL_TIMEOUT,
            log_level=LogLevels.warning,
            log_access=access_log,
            working_dir=Path.cwd(),
        ).serve()


def worker_app() -> WSGIApp:
    """granian's factory, in each worker: the app, its metrics bind (if any) opened
    here (never by a CLI command that builds the app), and the process environment
    kept out of every request."""
    if _factory is None:
        raise RuntimeError("serving.worker_app runs only in the workers of serve_wsgi")
    app = _factory()
    metrics = getattr(app, "extensions", {}).get("metrics")
    if metrics is not None:
        metrics.start_separate_bind()
    _no_process_environment_in_requests()
    return WithoutProcessEnvironment(app, dict(os.environ))


def _no_process_environment_in_requests() -> None:
    """granian's WSGI glue starts every request's environ from `dict(os.environ)`, read
    once per worker just after this factory returns: the services' secrets (master
    keys, database passwords, client secrets) would ride along in each request, and a
    variable named like a header (HTTP_…, CONTENT_…) would read as one the client
    sent. Its module is given an `os` that is the real one but for an empty
    environment, so a request holds what the server sets and the client sent, and
    nothing to strip (stripping ~35 variables cost 2-3 us a request). Should a granian
    copy the environment some other way, `WithoutProcessEnvironment` notices, says
    so, and strips it."""
    import granian.wsgi

    without_environment = ModuleType(os.__name__)
    vars(without_environment).update(vars(os))
    without_environment.environ = {}  # type: ignore[assignment]
    granian.wsgi.os = without_environment  # type: ignore[attr-defined]


class WithoutProcessEnvironment:
    """Strips the process environment from a request's environ, should granian copy it
    in after all: one lookup per request tells, the first variable of the process
    environment that neither granian nor a client sets (none: strip always). Stripped,
    each variable whose name and value are in the request is removed (so is a header
    sent with the same name and value as one)."""

    def __init__(self, app: WSGIApp, process_environment: dict[str, str]) -> None:
        self.app = app
        self.leaked = [(k, v) for k, v in process_environment.items() if k not in _SET_BY_GRANIAN]
        self.witness = next((k for k, _ in self.leaked if not k.startswith(_CLIENT_SET)), None)
        self.noticed = False

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self.witness is None or self.witness in environ:
            if not self.noticed and self.witness is not None:
                self.noticed = True
                log.warning(
                    "granian copied the process environment into a request (%s): "
                    "stripping it from every request",
                    self.witness,
                )
            for key, value in self.leaked:
                if environ.get(key) == value:
                    del environ[key]
        return self.app(environ, start_response)


#: Names a client's request can put in an environ (its headers).
_CLIENT_SET = ("HTTP_", "CONTENT_")

#: What granian (2.8) sets for every request, whatever the process environment says.
_SET_BY_GRANIAN = frozenset(
    {
        "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REQUEST_METHOD", "SCRIPT_NAME",
        "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
        "REMOTE_ADDR",
    }
)  # fmt: skip


def _refuse_taken(host: str, port: int) -> None:
    """granian's workers share the port (SO_REUSEPORT): a second instance of the same
    user, an old version still running, would start without error and take a share
    of the requests. A plain bind first makes that an error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise click.ClickException(f"{host}:{port} is in use by another process") from None
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {error.strerror}"
            ) from None
