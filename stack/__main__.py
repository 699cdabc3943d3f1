"""`python -m stack`: the local database and the whole local stack."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click
from dotenv import find_dotenv, load_dotenv

from issuer.config import Config
from stack import mailbox, migrate, postgres, supervisor
from stack.neon_api import DEFAULT_API_URL, JwksRegistration, NeonAPI, NeonAPIError


def data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR", ".data")) / "pg"


@click.group()
def cli() -> None:
    """Local stack commands."""


@cli.group()
def db() -> None:
    """The embedded PostgreSQL server under DATA_DIR (default .data/)."""


@db.command("up")
def db_up() -> None:
    """Start the embedded server (initialising it on first use) and print its URL."""
    server = postgres.start(data_dir())
    click.echo(server.url())


@db.command("down")
def db_down() -> None:
    """Stop the embedded server."""
    if not postgres.stop(data_dir()):
        click.echo("embedded PostgreSQL was not running", err=True)


@db.command("url")
def db_url() -> None:
    """Print the superuser URL of the running embedded server."""
    server = postgres.running(data_dir())
    if server is None:
        raise click.ClickException("embedded PostgreSQL is not running (make db-up)")
    click.echo(server.url())


@cli.command("migrate")
@click.option(
    "--database-url",
    metavar="URL",
    help="Migrate this Neon database (as its owner) instead of the embedded server: "
    "installs pg_session_jwt instead of the local auth schema.",
)
def migrate_command(database_url: str | None) -> None:
    """Apply sql/ idempotently (default: the embedded server under DATA_DIR)."""
    if database_url is not None and not database_url.strip():
        # libpq would read an empty URL as "the local default server".
        raise click.UsageError("--database-url is empty (is DATABASE_URL set?)")
    try:
        if database_url is not None:
            migrate.apply_neon(database_url)
            click.echo("migrated")
        else:
            click.echo(migrate.apply_local(postgres.start(data_dir())).owner_url)
    except migrate.MigrationError as exc:
        raise click.ClickException(str(exc)) from None


def _api_and_registration(
    provider_name: str, branch_id: str | None
) -> tuple[NeonAPI, JwksRegistration]:
    """Neon's API (NEON_API_KEY, NEON_API_URL) and what to register: ISSUER_URL's JWKS
    and ISSUER_DATABASE_AUDIENCE."""
    api_key = os.environ.get("NEON_API_KEY", "").strip()
    if not api_key:
        raise click.UsageError("set NEON_API_KEY (a Neon API key, in the environment or .env)")
    try:
        config = Config.from_env()
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if not config.issuer_url.startswith("https://"):
        raise click.UsageError(
            f"ISSUER_URL is {config.issuer_url}: Neon fetches the JWKS over HTTPS from the "
            "issuer's public URL (set ISSUER_URL to it)"
        )
    wanted = JwksRegistration(
        jwks_url=f"{config.issuer_url}/.well-known/jwks.json",
        provider_name=provider_name,
        audience=config.database_audience,
        branch_id=branch_id,
    )
    return NeonAPI(api_key, os.environ.get("NEON_API_URL") or DEFAULT_API_URL), wanted


def _register(project_id: str, branch_id: str | None, provider_name: str) -> None:
    """Register the issuer's JWKS URL and audience with the Neon project (idempotent)."""
    api, wanted = _api_and_registration(provider_name, branch_id)
    try:
        registration, created = api.register(project_id, wanted)
    except NeonAPIError as error:
        raise click.ClickException(str(error)) from None
    state = "registered" if created else "already registered, unchanged"
    click.echo(
        f"{wanted.jwks_url} (audience {wanted.audience}) {state} for Neon project {project_id}"
        + (f" (id {registration['id']})" if registration.get("id") else "")
    )


def _enable_data_api(
    project_id: str, branch_id: str | None, database: str, provider_name: str
) -> None:
    """Enable Neon's Data API for `database` with the issuer as its provider (idempotent)."""
    api, wanted = _api_and_registration(provider_name, branch_id)
    try:
        branch = branch_id or api.default_branch(project_id)
        url, created = api.enable_data_api(project_id, branch, database, wanted)
    except NeonAPIError as error:
        raise click.ClickException(str(error)) from None
    state = "enabled" if created else "already enabled, unchanged"
    click.echo(f"Data API for {database} on branch {branch} {state}: {url}")
    click.echo(f"  set APP_DATA_API_URL={url} (and APP_DATABASE_API=data_api to use it)")


@cli.command("neon-register")
@click.option("--project-id", required=True, help="The Neon project (console: Settings).")
@click.option("--branch-id", default=None, help="Only this branch (default: the project's).")
@click.option("--provider-name", default="own-login", show_default=True)
def neon_register_command(project_id: str, branch_id: str | None, provider_name: str) -> None:
    """Register ISSUER_URL's JWKS and ISSUER_DATABASE_AUDIENCE with a Neon project
    through Neon's API (NEON_API_KEY; NEON_API_URL overrides the API's base URL).
    A second run finds the registration and changes nothing."""
    load_dotenv(find_dotenv(usecwd=True))
    _register(project_id, branch_id, provider_name)


@cli.command("neon-data-api")
@click.option("--project-id", required=True, help="The Neon project (console: Settings).")
@click.option("--branch-id", default=None, help="The branch (default: the project's default).")
@click.option("--database", default="neondb", show_default=True)
@click.option("--provider-name", default="own-login", show_default=True)
def neon_data_api_command(
    project_id: str, branch_id: str | None, database: str, provider_name: str
) -> None:
    """Enable Neon's Data API for a database, with ISSUER_URL's JWKS and
    ISSUER_DATABASE_AUDIENCE as its provider, through Neon's API (NEON_API_KEY);
    print its URL. A second run finds it enabled and changes nothing."""
    load_dotenv(find_dotenv(usecwd=True))
    _enable_data_api(project_id, branch_id, database, provider_name)


@cli.command("neon-setup")
@click.option(
    "--data-api",
    is_flag=True,
    help="Also enable Neon's Data API for the database (needs NEON_API_KEY and NEON_PROJECT_ID).",
)
def neon_setup_command(data_api: bool) -> None:
    """Apply sql/ to your Neon database: DATABASE_URL (the neondb_owner
    connection string, from the environment or .env, as in Neon's guides); with
    NEON_API_KEY and NEON_PROJECT_ID also register the issuer's JWKS (neon-register),
    and with --data-api enable the Data API with it (neon-data-api)."""
    load_dotenv(find_dotenv(usecwd=True))
    database_url = os.environ.get("DATABASE_URL", "").strip()
    if not database_url:
        raise click.UsageError(
            "set DATABASE_URL (in the environment or .env) to your Neon database's owner "
            "connection string: postgresql://neondb_owner:…@ep-….neon.tech/neondb"
        )
    project_id = os.environ.get("NEON_PROJECT_ID", "").strip()
    if data_api and not (os.environ.get("NEON_API_KEY", "").strip() and project_id):
        raise click.UsageError(
            "--data-api needs NEON_API_KEY and NEON_PROJECT_ID (environment or .env)"
        )
    try:
        migrate.apply_neon(database_url)
    except migrate.MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("migrated: pg_session_jwt, grants, todos and its policies")
    branch_id = os.environ.get("NEON_BRANCH_ID") or None
    if data_api:
        database = urlsplit(database_url).path.lstrip("/") or "neondb"
        _enable_data_api(project_id, branch_id, database, "own-login")
    if os.environ.get("NEON_API_KEY", "").strip() and project_id:
        _register(project_id, branch_id, "own-login")


@cli.command("mail")
@click.option("--bind", default="127.0.0.1:8025", show_default=True)
@click.argument("maildir", type=click.Path(path_type=Path))
def mail_command(bind: str, maildir: Path) -> None:
    """A local SMTP server keeping every message in MAILDIR (`make run` starts it)."""
    mailbox.serve(bind, maildir)


@cli.command("proxy", context_settings={"ignore_unknown_options": True})
@click.argument("proxy_args", nargs=-1, type=click.UNPROCESSED)
def proxy_command(proxy_args: tuple[str, ...]) -> None:
    """`python -m proxy` in front of the embedded server under DATA_DIR (`make proxy`)."""
    load_dotenv(find_dotenv(usecwd=True))
    database = migrate.apply_local(postgres.start(data_dir()))
    env = {**os.environ, **supervisor.proxy_database_env(dict(os.environ), database)}
    argv = [sys.executable, "-m", "proxy", *proxy_args]
    os.execve(sys.executable, argv, env)  # noqa: S606 (the proxy replaces this process)


@cli.command("run")
@click.option(
    "--demo-users",
    is_flag=True,
    help="Also create alice@example.com and bob@example.com with the passwords "
    "printed at start (for trying the app on your machine only).",
)
def run_command(demo_users: bool) -> None:
    """Start PostgreSQL, the issuer, the proxy and the todo app; print the URLs;
    Ctrl-C stops all. Settings come from the environment and an optional .env."""
    load_dotenv(find_dotenv(usecwd=True))  # from the working directory, as Flask does
    sys.exit(supervisor.run(Path(os.environ.get("DATA_DIR", ".data")), demo_users))


if __name__ == "__main__":
    sys.exit(cli())
