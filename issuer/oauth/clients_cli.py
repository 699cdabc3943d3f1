"""`python -m issuer clients add|list|remove`: the applications allowed to ask for tokens."""

from __future__ import annotations

import click

from issuer.audit import audit
from issuer.cli import command_group
from issuer.db import get_engine
from issuer.oauth import clients
from issuer.oauth.clients import ClientError, Registration

clients_cli = command_group("clients", "Register, list and remove OAuth clients.")


@clients_cli.command("add")
@click.option("--name", required=True, help="Shown to users on the consent page.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Where codes may be sent (exact match; repeatable).",
)
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help="Where /logout may send the browser back (exact match; repeatable).",
)
@click.option(
    "--public/--confidential",
    default=False,
    help="Public clients (browser or native apps) get no secret and rely on PKCE.",
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(clients.SUPPORTED_GRANT_TYPES),
    help="Repeatable. Default: authorization_code and refresh_token.",
)
@click.option("--first-party", is_flag=True, help="Skip the consent page for this client.")
@click.option(
    "--scope",
    default=" ".join(clients.SUPPORTED_SCOPES),
    show_default=True,
    help="Space-separated scopes the client may receive.",
)
@click.option("--client-id", default=None, help="Choose the id (default: random).")
@click.option(
    "--audience",
    "audiences",
    multiple=True,
    metavar="URI",
    help=(
        "An audience (RFC 8707 resource) its access tokens may carry, e.g. the database's "
        "(ISSUER_DATABASE_AUDIENCE); repeatable. Default: none (tokens for sign-in only)."
    ),
)
def add(
    name: str,
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    public: bool,
    grant_types: tuple[str, ...],
    first_party: bool,
    scope: str,
    client_id: str | None,
    audiences: tuple[str, ...],
) -> None:
    """Register a client. A confidential client's secret is printed once, here."""
    registration = Registration(
        name=name,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris,
        public=public,
        grant_types=grant_types or Registration.grant_types,
        scope=scope,
        first_party=first_party,
        client_id=client_id,
        audiences=audiences,
    )
    try:
        client, secret = clients.register(get_engine(), registration)
    except ClientError as error:
        raise click.UsageError(str(error)) from None
    audit(
        "clients.add",
        client_id=client.client_id,
        public=client.is_public,
        grant_types=list(client.grant_types),
        first_party=client.first_party,
        audiences=list(client.audiences),
    )
    click.echo(f"client_id: {client.client_id}")
    if secret is not None:
        click.echo(f"client_secret: {secret}")
        click.echo("Store the secret now: only its digest is kept, it cannot be shown again.")


@clients_cli.command("list")
def list_clients() -> None:
    """One line per client: id, type, grant types, first-party, audiences, name."""
    for client in clients.all_clients(get_engine()):
        kind = "public" if client.is_public else "confidential"
        party = "first-party" if client.first_party else "third-party"
        grants = ",".join(client.grant_types)
        audiences = ",".join(client.audiences) or "-"
        click.echo(f"{client.client_id}\t{kind}\t{grants}\t{party}\t{audiences}\t{client.name}")


@clients_cli.command("audiences")
@click.argument("client_id")
@click.argument("audiences", nargs=-1, metavar="[URI]...")
def set_audiences(client_id: str, audiences: tuple[str, ...]) -> None:
    """Set exactly which audiences CLIENT_ID's tokens may carry (none: sign-in only).

    The client keeps its secret. Refresh tokens already issued keep their grant,
    but an audience removed here is not issued again from the next refresh on.
    """
    try:
        client = clients.set_audiences(get_engine(), client_id, audiences)
    except ClientError as error:
        raise click.UsageError(str(error)) from None
    if client is None:
        raise click.ClickException(f"no client {client_id!r}")
    audit("clients.audiences", client_id=client_id, audiences=list(client.audiences))
    click.echo(f"{client_id}: {', '.join(client.audiences) or 'no audiences (sign-in only)'}")


@clients_cli.command("remove")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(client_id: str, yes: bool) -> None:
    """Delete client CLIENT_ID with its pending codes and refresh tokens.

    Its users must log in again; access tokens already issued stay valid until
    they expire. Running issuers stop accepting it within a few seconds.
    """
    engine = get_engine()
    if clients.load(engine, client_id) is None:
        raise click.ClickException(f"no client {client_id!r}")
    if not yes:
        click.confirm(f"Remove client {client_id!r}?", abort=True, err=True)
    if not clients.remove(engine, client_id):
        raise click.ClickException(f"no client {client_id!r}")
    audit("clients.remove", client_id=client_id)
    click.echo(f"removed {client_id}")
