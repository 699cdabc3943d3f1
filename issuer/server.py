"""`python -m issuer serve`: the one way to run a production issuer, granian with the
settings below inside (`gunicorn -c python:issuer.gunicorn_conf` serves the same app
under gunicorn, for process managers that insist on it).

Chosen by measurement (wrk, 2 threads, 16 keep-alive connections, 5 s per figure,
on the 2 cores wrk shares; three alternating runs, 2026-12-04, issue 14):

                                          POST /token           GET jwks.json
                                          req/s (3 runs)        req/s (3 runs)
    gunicorn gthread, 2 workers x 4       2,696 2,016 2,077     2,654 2,487 2,475
    granian WSGI, 2 workers x 4 threads   3,994 3,130 3,539    40,183 29,042 31,187

gunicorn's earlier sweep (2 to 4 workers, 1 to 4 threads, sync) stayed within its
own noise; its gthread worker is the ceiling (a constant WSGI app: ~9k req/s there).
granian parses HTTP in Rust and hands the app only the request: the JWKS, served
from memory, goes past 30k req/s, and `/token` gains half again. Two workers (one
per core); four blocking threads per worker let a slow request (a password hash, a
PostgreSQL round trip) wait without stalling the token traffic behind it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import click
from flask import Flask

from envsettings import SettingError
from issuer.config import Config
from serving import ServeSettings, serve_wsgi, with_options


def settings(environ: Mapping[str, str] | None = None) -> ServeSettings:
    """ISSUER_BIND, ISSUER_WORKERS and ISSUER_THREADS, after every issuer setting is
    checked (SettingError: one line, before any worker starts)."""
    Config.from_env(environ).check()
    return ServeSettings.from_env("ISSUER", "127.0.0.1:8001", environ)


def served_app() -> Flask:
    """The app of one serving worker (granian builds one in each)."""
    from issuer import create_app

    app = create_app()
    if app.config["ISSUER"].trusted_proxies:
        # Started as a granian factory by hand: see `run` for why gunicorn must serve.
        raise RuntimeError(
            "ISSUER_TRUSTED_PROXIES is set: serve with `python -m issuer serve` (gunicorn), "
            "not granian, which lets X_Forwarded_For pass for X-Forwarded-For"
        )
    start_serving(app)
    return app


def start_serving(app: Flask) -> None:
    """Audit lines (token issuance, reuse, revocation, logout) go to stderr, which the
    process manager collects; without a handler they would be lost. Each worker ticks
    the scheduler; the database lets one of them run each job."""
    from issuer import start_scheduler
    from issuer.audit import log_to_stderr

    log_to_stderr()
    start_scheduler(app)


def run(chosen: ServeSettings, *, behind_proxies: bool) -> None:
    """Serve until SIGTERM or SIGINT.

    Behind reverse proxies whose `X-Forwarded-For` the issuer trusts (its login and
    sign-up throttles key on the client address it names), gunicorn serves instead:
    it drops header names with underscores, while granian would let a client's
    `X_Forwarded_For` stand in for the proxy's `X-Forwarded-For` (both become
    HTTP_X_FORWARDED_FOR), so anyone could pick the address the throttles see.
    """
    if behind_proxies:
        click.echo(
            "ISSUER_TRUSTED_PROXIES is set: serving on gunicorn, which drops header names "
            "with underscores (X_Forwarded_For would pass for X-Forwarded-For under granian)",
            err=True,
        )
        argv = [
            sys.executable, "-m", "gunicorn", "-c", "python:issuer.gunicorn_conf",
            "--bind", chosen.bind, "--workers", str(chosen.workers),
            "--threads", str(chosen.threads),
        ]  # fmt: skip
        os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed arguments
    serve_wsgi(
        served_app,
        chosen.host,
        chosen.port,
        workers=chosen.workers,
        threads=chosen.threads,
    )


@click.command("serve")
@click.option("--bind", help="Listen address (default ISSUER_BIND, 127.0.0.1:8001).")
@click.option("--workers", type=click.IntRange(min=1), help="Default ISSUER_WORKERS, the CPUs.")
@click.option("--threads", type=click.IntRange(min=1), help="Default ISSUER_THREADS, 4.")
def serve_command(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve the issuer in production (granian; every setting checked first)."""
    environ = with_options("ISSUER", bind=bind, workers=workers, threads=threads)
    try:
        chosen = settings(environ)
        behind_proxies = Config.from_env(environ).trusted_proxies > 0
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    run(chosen, behind_proxies=behind_proxies)
