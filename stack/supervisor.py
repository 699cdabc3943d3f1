"""`make run`: the whole local stack in one terminal, stopped cleanly by Ctrl-C.

Order matters: PostgreSQL first (migrated), then the issuer's key ring, then the
issuer (whose JWKS the proxy fetches) and the proxy. Every service is a child
process on a production server; if one dies, everything stops and the exit
status says so, rather than leaving a half-running stack behind.
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

import click

from issuer.config import Config
from issuer.keyring import KeyRing, KeyRingError, RingExists
from stack import migrate, postgres

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


def services(env: dict[str, str]) -> list[Service]:
    """The stack's HTTP services, configured from the same environment they will see."""
    issuer_bind = env.get("ISSUER_BIND", "127.0.0.1:8001")
    issuer_host, issuer_port = issuer_bind.rsplit(":", 1)
    proxy_host = env.get("PROXY_HOST", "127.0.0.1")
    proxy_port = int(env.get("PROXY_PORT", "4444"))
    venv_bin = Path(sys.executable).parent
    return [
        Service(
            "issuer",
            [str(venv_bin / "gunicorn"), "-c", "python:issuer.gunicorn_conf"],
            issuer_host,
            int(issuer_port),
            env.get("ISSUER_URL", f"http://{issuer_bind}"),
        ),
        Service(
            "proxy",
            [sys.executable, "-m", "proxy"],
            proxy_host,
            proxy_port,
            f"http://{proxy_host}:{proxy_port}/sql",
        ),
    ]


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


def ensure_key_ring() -> None:
    """Create the issuer's key ring on first run; keep it on every later run.

    The ring decides whether it exists (under its own lock), so two first runs
    cannot both create one.
    """
    try:
        config = Config.from_env()
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    try:
        manifest = KeyRing(config.keys_dir, passphrase=config.keys_passphrase).init()
    except RingExists:
        return
    except KeyRingError as error:
        raise click.ClickException(f"key ring: {error}") from None
    click.echo(f"created the key ring in {config.keys_dir}: active {manifest.active.kid}")


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


def run(data_dir: Path) -> int:
    """Start everything, print the URLs, and supervise until Ctrl-C or a child's death."""
    env = dict(os.environ)
    env.setdefault("DATA_DIR", str(data_dir))
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    children: list[tuple[Service, subprocess.Popen[bytes]]] = []
    status = 0
    try:
        database = migrate.apply_local(postgres.start(data_dir / "pg"))
        ensure_key_ring()
        for service in services(env):
            # New process group: Ctrl-C reaches us only, and we stop children in order.
            process = subprocess.Popen(service.argv, env=env, start_new_session=True)  # noqa: S603
            children.append((service, process))
            wait_listening(service, process)
        click.echo("\nThe stack is up:")
        for service in children:
            click.echo(f"  {service[0].name:<8} {service[0].url}")
        click.echo(f"  {'database':<8} {database.owner_url}  (DATABASE_URL, owner)")
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
        postgres.stop(data_dir / "pg")
        click.echo("stopped")
    return status
