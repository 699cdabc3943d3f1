"""`python -m issuer serve`: the one way to run a production issuer, gunicorn with
the settings below inside (`gunicorn -c python:issuer.gunicorn_conf` runs the same).

Chosen by measurement (bench/issuer_http.py's method, per configuration: wrk,
2 threads, 16 keep-alive connections, 5 s per figure, 2 cores shared with wrk
and, at the time, with other work: load average 4 to 11). Medians of 3 to 7
runs; "CPU" is the server processes' CPU time per request, the steadier figure:

                             POST /token                 GET jwks.json
                          req/s   CPU us/req          req/s   CPU us/req
    gthread 2 x 1          1950      ~540             6100      ~150
    gthread 2 x 2          1440      ~730             6000      ~170
    gthread 2 x 4          2020      ~570             5700      ~150   <- chosen
    gthread 3 x 1          1650      ~520             5700      ~170
    gthread 4 x 1          1960      ~660             6400      ~165
    sync 2 (no keep-alive) 1420      ~600             2800      ~170
    constant WSGI app, gthread 2 x 4:          ~9000 req/s, ~130 CPU us/req

Under this load the configurations are within each other's noise, except
that sync (no keep-alive) halves the JWKS rate and two threads per worker did
worst. 2 workers x 4 threads is kept: one process per core keeps both cores
busy, and four threads let a slow request (a password hash, a PostgreSQL round
trip) wait without stalling the token traffic behind it, which one thread per
worker would. JWKS costs the server about what the constant app does.
"""

from __future__ import annotations

import os
from typing import Any

import click
from gunicorn.app.base import BaseApplication

import servicemetrics
from envsettings import Env, SettingError
from issuer.config import Config


def settings(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """gunicorn's settings from ISSUER_BIND, ISSUER_WORKERS and ISSUER_THREADS, after
    every issuer setting is checked (SettingError: one line, before any worker)."""
    Config.from_env(environ).check()
    env = Env(environ)
    return {
        "bind": env.text("ISSUER_BIND", "127.0.0.1:8001"),
        "workers": env.integer("ISSUER_WORKERS", os.cpu_count() or 2),
        "threads": env.integer("ISSUER_THREADS", 4),
        "worker_class": "gthread",
        "keepalive": 5,
        # Every worker builds its own app (database engine, key ring) after the fork.
        "preload_app": False,
        # One control socket path per OS user by default; the stack's three servers
        # would take it over from each other, and nothing here uses it.
        "control_socket_disable": True,
        # One metrics directory for every worker (see servicemetrics).
        "on_starting": servicemetrics.on_starting,
        "child_exit": servicemetrics.child_exit,
        "on_exit": servicemetrics.on_exit,
        "post_worker_init": post_worker_init,
    }


def post_worker_init(worker: Any) -> None:
    """Audit lines (token issuance, reuse, revocation, logout) go to stderr,
    which the process manager collects; without a handler they would be lost.
    Each worker ticks the scheduler; the database lets one run each job."""
    from issuer import start_scheduler
    from issuer.audit import log_to_stderr

    log_to_stderr()
    # These settings can serve another app (the benchmark's constant baseline): the
    # timer is the issuer's, and runs only where the issuer is served.
    if "keyring" in getattr(worker.wsgi, "extensions", {}):
        start_scheduler(worker.wsgi)


class IssuerServer(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from issuer import create_app

        return create_app()


@click.command("serve")
@click.option("--bind", help="Listen address (default ISSUER_BIND, 127.0.0.1:8001).")
@click.option("--workers", type=click.IntRange(min=1), help="Default ISSUER_WORKERS, the CPUs.")
@click.option("--threads", type=click.IntRange(min=1), help="Default ISSUER_THREADS, 4.")
def serve_command(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve the issuer in production (gunicorn; every setting checked first)."""
    try:
        options = settings()
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    given = {"bind": bind, "workers": workers, "threads": threads}
    options.update({name: value for name, value in given.items() if value is not None})
    IssuerServer(options).run()
