"""`python -m proxy`: serve the local Neon proxy (granian or gunicorn, `PROXY_SERVER`)."""

from __future__ import annotations

import dataclasses
import os
import sys

import click
import psycopg
from dotenv import load_dotenv

from proxy.config import ProxyConfig
from proxy.server import ProxyServer, gunicorn_options, serve_granian
from proxy.session import SessionKey


@click.command()
@click.option("--host", help="Listen address (default PROXY_HOST, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Listen port (default PROXY_PORT, 4444)."
)
@click.option("--workers", type=click.IntRange(min=1), help="Default PROXY_WORKERS, 2.")
@click.option("--threads", type=click.IntRange(min=1), help="Default PROXY_THREADS, 8.")
@click.option("--access-log", is_flag=True, help="Log every request to stdout.")
def main(
    host: str | None, port: int | None, workers: int | None, threads: int | None, access_log: bool
) -> None:
    """Serve Neon's /sql protocol in front of the configured Postgres."""
    try:
        config = ProxyConfig.from_env()
    except ValueError as error:  # SettingError, or an unreadable auth rules file
        raise click.ClickException(str(error)) from None
    given = {"host": host, "port": port, "workers": workers, "threads": threads}
    config = dataclasses.replace(config, **{k: v for k, v in given.items() if v is not None})
    if threads is not None and "PROXY_POOL_SIZE" not in os.environ:
        config = dataclasses.replace(config, pool_size=threads)
    for rule in config.auth_rules:
        if rule.audience is None:
            click.secho(
                f"WARNING: auth rule {rule.id!r} checks no audience: every token its JWKS "
                "signs opens the database (ID tokens, every client's access tokens). "
                "Set PROXY_AUDIENCE (or the rule's \"audience\") to the issuer's "
                "ISSUER_DATABASE_AUDIENCE, as you must in Neon's console.",
                err=True,
                fg="red",
                bold=True,
            )
    session_key = SessionKey.generate()
    try:
        session_key.install(config.admin_url)
    except psycopg.Error as error:
        raise click.ClickException(
            "cannot install the session key through PROXY_ADMIN_URL: "
            f"{str(error).splitlines()[0]} "
            "(is the database migrated? `make migrate`)"
        ) from None
    if config.server == "granian":
        serve_granian(config, session_key, access_log=access_log)
        return
    options = gunicorn_options(
        f"{config.host}:{config.port}", config.workers, config.threads, access_log=access_log
    )
    ProxyServer(config, options, session_key).run()


if __name__ == "__main__":
    load_dotenv()
    sys.exit(main())
