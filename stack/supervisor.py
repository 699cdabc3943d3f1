"""`make run`: the whole local stack in one terminal, stopped cleanly by Ctrl-C.

Order matters: PostgreSQL first (migrated), then the issuer's key ring and the
todo app's OAuth client, then the issuer (whose JWKS the proxy fetches), the
proxy, and the app (which needs both). Every service is a child process on a
production server; if one dies, everything stops and the exit status says so,
rather than leaving a half-running stack behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

import servicedb
from issuer import migrations
from issuer.config import DEFAULT_DATABASE_AUDIENCE, Config
from issuer.keys import KeyRing, KeyRingError, RingExists
from issuer.oauth.clients import ClientError
from stack import app_client, demo_users, loopback_twin, migrate, postgres

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Service:
    """A child process and the loopback address that says it is up."""

    name: str
    argv: list[str]
    host: str
    port: int
    url: str


def stack_env(environ: dict[str, str], data_dir: Path) -> dict[str, str]:
    """The children's environment: `environ` plus the defaults that tie them together.

    Each service has its own defaults; here the ones that must agree are
    derived from a single setting (a bind address, DATA_DIR), so that moving
    one port or the data directory moves every reference to it. Whatever the
    operator set wins.
    """
    env = dict(environ)
    env.setdefault("DATA_DIR", str(data_dir))
    issuer_url = public_url(env.setdefault("ISSUER_BIND", "127.0.0.1:8001"))
    env.setdefault("ISSUER_URL", issuer_url)
    env.setdefault("PROXY_JWKS_URL", f"{issuer_url}/.well-known/jwks.json")
    proxy = public_url(f"{env.get('PROXY_HOST', '127.0.0.1')}:{env.get('PROXY_PORT', '4444')}")
    env.setdefault("NEON_HTTP_ENDPOINT", f"{proxy}/sql")
    authenticated = env.setdefault(
        "DATABASE_AUTHENTICATED_URL", "postgresql://authenticated@localhost/neondb"
    )
    # The same proxy serves Neon's Data API for that database, as Neon's proxy does.
    database = urlsplit(authenticated).path.lstrip("/") or "neondb"
    env.setdefault("APP_DATA_API_URL", f"{proxy}/{database}/rest/v1")
    # One audience for database tokens: the issuer grants it to the app, the app
    # asks for it, the proxy requires it (as Neon must be told to).
    audience = env.setdefault("ISSUER_DATABASE_AUDIENCE", DEFAULT_DATABASE_AUDIENCE)
    env.setdefault("APP_DATABASE_AUDIENCE", audience)
    env.setdefault("PROXY_AUDIENCE", audience)
    if "ISSUER_SMTP_URL" not in env:
        # No mail server named: the local one, keeping every message in a Maildir
        # that the issuer's /outbox page shows.
        mail_bind = env.setdefault("MAIL_BIND", "127.0.0.1:8025")
        env["ISSUER_SMTP_URL"] = f"smtp://{mail_bind}"
        env.setdefault("ISSUER_OUTBOX_DIR", str(data_dir / "mail"))
    env.setdefault("APP_URL", public_url(env.setdefault("APP_BIND", "127.0.0.1:8000")))
    env.setdefault("APP_DATA_DIR", str(data_dir))
    if "APP_DATABASE_URL" not in env:  # release 0.1's name for APP_STORE_URL
        env.setdefault("APP_STORE_URL", f"sqlite:///{data_dir / 'app.sqlite3'}")
    return env


def proxy_database_env(env: dict[str, str], database: migrate.LocalDatabase) -> dict[str, str]:
    """Where the proxy finds the embedded server (unless the operator said otherwise):
    the proxy knows nothing of the stack and is told, as on any other host."""
    given = {
        "PROXY_DATABASE_HOST": str(database.server.socket_dir),
        "PROXY_DATABASE_PORT": str(database.server.port),
        "PROXY_ADMIN_URL": database.owner_url,
    }
    return {name: env.get(name) or value for name, value in given.items()}


def public_url(bind: str) -> str:
    """The URL of a listen address. 127.0.0.1 is called `localhost`: browsers refuse
    IP addresses as WebAuthn relying parties, so passkeys need a name. Only that
    one: `localhost` leads clients to 127.0.0.1 (or ::1, held by `loopback_twin`),
    so a service on another loopback address (127.0.0.2) keeps its address, or
    clients would knock on a port of 127.0.0.1 that anyone could take."""
    host, port = _host_port(bind)
    if host == "127.0.0.1":
        host = "localhost"
    return f"http://{host}:{port}"


def _host_port(bind: str) -> tuple[str, int]:
    host, port = bind.rsplit(":", 1)
    return host, int(port)


def services(env: dict[str, str]) -> list[Service]:
    """The stack's HTTP services in start order, from the environment they will see."""
    proxy_host = env.get("PROXY_HOST", "127.0.0.1")
    proxy_port = int(env.get("PROXY_PORT", "4444"))
    mail = []
    if "MAIL_BIND" in env:
        outbox = env["ISSUER_OUTBOX_DIR"]
        mail.append(
            Service(
                "mail",
                [sys.executable, "-m", "stack", "mail", "--bind", env["MAIL_BIND"], outbox],
                *_host_port(env["MAIL_BIND"]),
                f"{env['ISSUER_SMTP_URL']} -> {outbox} (read at {env['ISSUER_URL']}/outbox)",
            )
        )
    return [
        *mail,
        Service(
            "issuer",
            [sys.executable, "-m", "issuer", "serve"],
            *_host_port(env["ISSUER_BIND"]),
            env["ISSUER_URL"],
        ),
        Service(
            "proxy",
            [sys.executable, "-m", "proxy"],
            proxy_host,
            proxy_port,
            f"{public_url(f'{proxy_host}:{proxy_port}')}/sql",
        ),
        Service(
            "app",
            [sys.executable, "-m", "app", "serve"],
            *_host_port(env["APP_BIND"]),
            env["APP_URL"],
        ),
    ]


def hold_loopback_twins(env: dict[str, str]) -> list[socket.socket]:
    """[::1] twins of the ports published as `localhost` (see `stack.loopback_twin`)."""
    published = [service for service in services(env) if service.name != "mail"]
    try:
        return loopback_twin.hold((service.host, service.port) for service in published)
    except loopback_twin.TwinTaken as error:
        raise click.ClickException(str(error)) from None


def wait_listening(service: Service, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(f"{service.name} exited with status {process.returncode}")
        try:
            with socket.create_connection((service.host, service.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise click.ClickException(f"{service.name} did not listen on {service.host}:{service.port}")


def issuer_config(env: dict[str, str]) -> Config:
    try:
        return Config.from_env(env)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def issuer_engine(config: Config) -> Engine:
    """The issuer's database, its tables created (as the issuer itself would on start)."""
    try:
        engine = servicedb.engine_for(config.database_url)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    try:
        migrations.upgrade(engine)
    except DBAPIError as error:
        engine.dispose()
        # The driver's own words: the URL (and its password) stay out of them.
        raise click.ClickException(f"the issuer's database: {error.orig}") from None
    return engine


def ensure_key_ring(config: Config) -> None:
    """Create the issuer's key ring on first run; keep it on every later run.

    The ring decides whether it exists (under its own lock), so two first runs
    cannot both create one.
    """
    try:
        manifest = KeyRing(
            config.keys_dir,
            passphrase=config.keys_passphrase,
            static_jwks_dir=config.jwks_static_dir,
        ).init()
    except RingExists:
        return
    except KeyRingError as error:
        raise click.ClickException(f"key ring: {error}") from None
    click.echo(f"created the key ring in {config.keys_dir}: active {manifest.active.kid}")


def ensure_app_client(env: dict[str, str], engine: Engine, data_dir: Path, audience: str) -> None:
    """Put the todo app's client credentials in `env`, registering the app if needed.

    Credentials the operator set (both APP_CLIENT_ID and APP_CLIENT_SECRET)
    are used as they are, and nothing is registered.
    """
    given = [name for name in ("APP_CLIENT_ID", "APP_CLIENT_SECRET") if env.get(name)]
    if len(given) == 2:
        return
    if given:
        raise click.ClickException(
            f"{given[0]} is set without its pair: set both APP_CLIENT_ID and "
            "APP_CLIENT_SECRET, or neither to let `make run` register the app"
        )
    try:
        credentials, change = app_client.ensure(
            engine, env["APP_URL"], data_dir / app_client.FILE_NAME, audience
        )
    except ClientError as error:
        raise click.ClickException(f"APP_URL: {error}") from None
    if change is not None:
        click.echo(change)
    env["APP_CLIENT_ID"] = credentials.client_id
    env["APP_CLIENT_SECRET"] = credentials.client_secret


def stop_all(children: list[tuple[Service, subprocess.Popen[bytes]]]) -> None:
    for _, process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for _, process in children:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def print_urls(started: list[Service], database_url: str, data_api_url: str) -> None:
    """The app first: it is the one to open."""
    by_name = {service.name: service for service in started}
    click.echo("\nThe stack is up:")
    click.echo(f"  {'app':<9} {by_name['app'].url}  <- open this")
    for name in ("issuer", "proxy"):
        click.echo(f"  {name:<9} {by_name[name].url}")
    if "mail" in by_name:
        click.echo(f"  {'mail':<9} {by_name['mail'].url}")
    click.echo(f"  {'data api':<9} {data_api_url}")
    click.echo(f"  {'database':<9} {database_url}  (DATABASE_URL, owner)")


def run(data_dir: Path, with_demo_users: bool = False) -> int:
    """Start everything, print the URLs, and supervise until Ctrl-C or a child's death."""
    env = stack_env(dict(os.environ), data_dir)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    children: list[tuple[Service, subprocess.Popen[bytes]]] = []
    twins: list[socket.socket] = []
    status = 0
    try:
        twins = hold_loopback_twins(env)
        database = migrate.apply_local(postgres.start(data_dir / "pg"))
        env.update(proxy_database_env(env, database))
        config = issuer_config(env)
        ensure_key_ring(config)
        engine = issuer_engine(config)
        try:
            ensure_app_client(env, engine, data_dir, config.database_audience)
            created = demo_users.ensure(engine) if with_demo_users else []
        finally:
            engine.dispose()
        for service in services(env):
            # New process group: Ctrl-C reaches us only, and we stop children in order.
            process = subprocess.Popen(service.argv, env=env, start_new_session=True)  # noqa: S603
            children.append((service, process))
            wait_listening(service, process)
        print_urls(
            [service for service, _ in children], database.owner_url, env["APP_DATA_API_URL"]
        )
        if with_demo_users:
            click.echo("\nDemo users (--demo-users):")
            for email, password in demo_users.DEMO_USERS:
                note = "created" if email in created else "existing account, left as it was"
                click.echo(f"  {email:<18} {password}  ({note})")
        click.echo("\nCtrl-C stops everything.")
        while not stopping:
            for service, process in children:
                if process.poll() is not None:
                    click.echo(f"{service.name} exited with status {process.returncode}", err=True)
                    stopping, status = True, 1
            time.sleep(0.2)
    except click.ClickException as error:
        click.echo(f"Error: {error.format_message()}", err=True)
        status = 1
    except migrate.MigrationError as error:
        click.echo(f"Error: {error}", err=True)
        status = 1
    finally:
        stop_all(children)
        loopback_twin.release(twins)
        postgres.stop(data_dir / "pg")
        click.echo("stopped")
    return status
