"""`python -m proxy`: serve the local Neon proxy with gunicorn."""

from __future__ import annotations

import dataclasses
import os
import sys

import click
import psycopg
from dotenv import load_dotenv

from proxy.config import ProxyConfig
from proxy.server import ProxyServer, gunicorn_options
from proxy.session import SessionKey


@click.command()
@click.option(
    "--host",
    default=lambda: os.environ.get("PROXY_HOST", "127.0.0.1"),
    show_default="127.0.0.1 (PROXY_HOST)",
)
@click.option(
    "--port",
    type=int,
    default=lambda: int(os.environ.get("PROXY_PORT", 4444)),
    show_default="4444 (PROXY_PORT)",
)
@click.option(
    "--workers",
    type=int,
    default=lambda: int(os.environ.get("PROXY_WORKERS", 2)),
    show_default="2 (PROXY_WORKERS)",
)
@click.option(
    "--threads",
    type=int,
    default=lambda: int(os.environ.get("PROXY_THREADS", 8)),
    show_default="8 (PROXY_THREADS)",
)
@click.option("--access-log", is_flag=True, help="Log every request to stdout.")
def main(host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
    """Serve Neon's /sql protocol on HOST:PORT in front of the configured Postgres."""
    try:
        config = ProxyConfig.from_env()
    except (RuntimeError, ValueError) as error:
        raise click.ClickException(str(error)) from None
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
    if "PROXY_POOL_SIZE" not in os.environ:
        # One connection per request thread: a thread never waits for a connection.
        config = dataclasses.replace(config, pool_size=threads)
    session_key = SessionKey.generate()
    try:
        session_key.install(config.admin_url)
    except psycopg.Error as error:
        raise click.ClickException(
            "cannot install the session key through PROXY_ADMIN_URL: "
            f"{str(error).splitlines()[0]} "
            "(is the database migrated? `make migrate`)"
        ) from None
    options = gunicorn_options(f"{host}:{port}", workers, threads, access_log=access_log)
    ProxyServer(config, options, session_key).run()


if __name__ == "__main__":
    load_dotenv()
    sys.exit(main())
