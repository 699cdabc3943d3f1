"""`python -m app serve`: the todo app in production, on granian like the issuer and
the proxy (`gunicorn -c python:app.gunicorn_conf` serves it from the same settings).

A page waits on the issuer or the SQL endpoint most of its time: four threads per
worker let those waits overlap, one worker per core.
"""

from __future__ import annotations

import os

import click

from app import create_app
from app.config import AppConfig
from envsettings import Env, SettingError
from serving import serve_wsgi, split_bind


@click.command("serve")
@click.option("--bind", help="Listen address (default APP_BIND, 127.0.0.1:8000).")
@click.option("--workers", type=click.IntRange(min=1), help="Default APP_WORKERS, the CPUs.")
@click.option("--threads", type=click.IntRange(min=1), help="Default APP_THREADS, 4.")
def serve_command(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve the todo app in production (granian; every setting checked first)."""
    env = Env()
    try:
        AppConfig.from_env().check()
        bind = bind or env.text("APP_BIND", "127.0.0.1:8000")
        host, port = split_bind("APP_BIND", bind)
        workers = workers or env.integer("APP_WORKERS", os.cpu_count() or 2)
        threads = threads or env.integer("APP_THREADS", 4)
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    serve_wsgi(create_app, host, port, workers=workers, threads=threads)
