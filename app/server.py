"""`python -m app serve`: the todo app in production, on granian like the issuer and
the proxy (`gunicorn -c python:app.gunicorn_conf` serves it from the same settings).

A page waits on the issuer or the SQL endpoint most of its time: four threads per
worker let those waits overlap, one worker per core.
"""

from __future__ import annotations

from collections.abc import Mapping

import click

from app import create_app
from app.config import AppConfig
from envsettings import SettingError
from serving import ServeSettings, serve_wsgi, with_options


def settings(environ: Mapping[str, str] | None = None) -> ServeSettings:
    """APP_BIND, APP_WORKERS and APP_THREADS, after every app setting is checked
    (SettingError: one line, before any worker starts)."""
    AppConfig.from_env(environ).check()
    return ServeSettings.from_env("APP", "127.0.0.1:8000", environ)


@click.command("serve")
@click.option("--bind", help="Listen address (default APP_BIND, 127.0.0.1:8000).")
@click.option("--workers", type=click.IntRange(min=1), help="Default APP_WORKERS, the CPUs.")
@click.option("--threads", type=click.IntRange(min=1), help="Default APP_THREADS, 4.")
def serve_command(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve the todo app in production (granian; every setting checked first)."""
    try:
        chosen = settings(with_options("APP", bind=bind, workers=workers, threads=threads))
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    serve_wsgi(create_app, chosen.host, chosen.port, workers=chosen.workers, threads=chosen.threads)
