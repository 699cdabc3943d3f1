"""`python -m issuer users …`: manage accounts from the command line."""

from __future__ import annotations

import json
import sys

import click
from sqlalchemy import delete

from issuer.accounts import totp, users
from issuer.accounts.emails import InvalidEmailError, normalize_email
from issuer.accounts.models import login_sessions
from issuer.accounts.passwords import PASSWORD_MAX_LENGTH, PasswordPolicyError, check_policy
from issuer.audit import audit
from issuer.cli import claims_option, command_group
from issuer.db import get_engine

users_cli = command_group(
    "users", "Create, list, verify, disable and enable user accounts; reset second factors."
)


def _email(raw: str) -> str:
    try:
        return normalize_email(raw)
    except InvalidEmailError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # All of stdin minus the final line break, as `docker login` does; a
        # bounded read, since anything longer is refused anyway.
        password = sys.stdin.read(PASSWORD_MAX_LENGTH + 3).removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_policy(password)
    except PasswordPolicyError as exc:
        raise click.ClickException(str(exc)) from None
    return password


@users_cli.command("add")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--verified", is_flag=True, help="You vouch that EMAIL belongs to its owner.")
@claims_option("A custom token claim; VALUE is JSON if it parses, else a string.")
def add_user(email: str, password_stdin: bool, verified: bool, claims: dict[str, object]) -> None:
    """Create an account for EMAIL (unconfirmed unless --verified: its owner confirms it
    at the first sign-in to an app)."""
    normalized = _email(email)
    password = _read_password(password_stdin)
    try:
        user = users.create_user(
            get_engine(), normalized, password, claims, email_verified=verified
        )
    except users.DuplicateEmailError as exc:
        raise click.ClickException(str(exc)) from None
    audit("user.created", user_id=user.id, via="cli")
    click.echo(f"Created {user.email} (sub {user.id})")


@users_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_users(as_json: bool) -> None:
    """List accounts (never their password hashes)."""
    for user in users.list_users(get_engine()):
        if as_json:
            record = {
                "id": user.id,
                "email": user.email,
                "claims": user.claims,
                "disabled": user.disabled,
                "email_verified": user.email_verified,
                "created_at": user.created_at.isoformat(),
            }
            click.echo(json.dumps(record, separators=(",", ":")))
            continue
        status = "disabled" if user.disabled else "active"
        status += "" if user.email_verified else ",unverified"
        created = user.created_at.strftime("%Y-%m-%d %H:%M")
        claims = json.dumps(user.claims, separators=(",", ":")) if user.claims else ""
        click.echo(f"{user.id}  {user.email}  {status}  {created}  {claims}".rstrip())


def _set_disabled(email: str, disabled: bool) -> None:
    try:
        user = users.set_disabled(get_engine(), _email(email), disabled)
    except users.UnknownUserError as exc:
        raise click.ClickException(str(exc)) from None
    audit("user.disabled" if disabled else "user.enabled", user_id=user.id, via="cli")
    click.echo(f"{'Disabled' if disabled else 'Enabled'} {user.email}")


@users_cli.command("disable")
@click.argument("email")
def disable_user(email: str) -> None:
    """Refuse logins for EMAIL and end its sessions (tokens already issued
    stay valid until they expire)."""
    _set_disabled(email, True)


@users_cli.command("enable")
@click.argument("email")
def enable_user(email: str) -> None:
    """Allow EMAIL to log in again."""
    _set_disabled(email, False)


@users_cli.command("verify")
@click.argument("email")
def verify_user(email: str) -> None:
    """Mark EMAIL's address as confirmed (you vouch that it belongs to the account's owner)."""
    try:
        user = users.set_email_verified(get_engine(), _email(email))
    except users.UnknownUserError as exc:
        raise click.ClickException(str(exc)) from None
    audit("email.verified", user_id=user.id, via="cli")
    click.echo(f"Marked {user.email} as verified")


@users_cli.command("reset-2fa")
@click.argument("email")
def reset_second_factor(email: str) -> None:
    """Turn off EMAIL's authenticator app and recovery codes (for an owner who lost
    both) and end the account's sessions; its passkeys stay. Check who is asking first."""
    user = users.find_user(get_engine(), _email(email))
    if user is None:
        raise click.ClickException(f"No account for {_email(email)}.")
    if not totp.enrolled(get_engine(), user.id):
        raise click.ClickException(f"{user.email} has no authenticator app.")
    with get_engine().begin() as conn:
        totp.remove(conn, user.id)
        conn.execute(delete(login_sessions).where(login_sessions.c.user_id == user.id))
    audit("mfa.disabled", user_id=user.id, method="totp", via="cli")
    click.echo(f"Turned off the authenticator app of {user.email}; its sessions ended")
