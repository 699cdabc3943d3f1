"""`python -m issuer token mint`: a signed database token, for debugging RLS policies."""

from __future__ import annotations

import base64
import json

import click
from flask import current_app

from issuer.audit import audit
from issuer.cli import claims_option, command_group, operator_errors
from issuer.config import Config
from issuer.keys import KeyRingError
from issuer.tokens import ReservedClaimError, database_role, mint_access_token

token = command_group("token", "Mint tokens for debugging (for example RLS policies).")


@token.command("mint")
@click.option("--sub", "subject", required=True, help="The token's subject (user id).")
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    help="Lifetime in seconds (default and maximum: ISSUER_ACCESS_TOKEN_TTL).",
)
@click.option(
    "--aud",
    "audience",
    help="Audience (default: ISSUER_DATABASE_AUDIENCE: a token the database accepts).",
)
@click.option("--scope", help="Space-separated scopes.")
@claims_option("Custom claim; VALUE is JSON if it parses (true, 42, [..]), else a string.")
@operator_errors(ReservedClaimError, KeyRingError)
def mint_command(
    subject: str, ttl: int | None, audience: str | None, scope: str | None, claims: dict
) -> None:
    """Print a signed access token for SUBJECT on stdout."""
    config: Config = current_app.config["ISSUER"]
    if ttl is not None and ttl > config.access_token_ttl:
        # `keys prune` relies on no token outliving ISSUER_ACCESS_TOKEN_TTL.
        raise click.BadParameter(
            f"at most ISSUER_ACCESS_TOKEN_TTL ({config.access_token_ttl} s)", param_hint="--ttl"
        )
    ring = current_app.extensions["keyring"]
    jwt = mint_access_token(
        ring,
        issuer=config.issuer_url,
        subject=subject,
        audience=audience if audience is not None else config.database_audience,
        ttl=ttl or config.access_token_ttl,
        scope=scope,
        role=database_role(audience or config.database_audience, config.database_audience),
        extra_claims=claims,
    )
    payload = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    audit(
        "token.mint",
        sub=subject,
        jti=payload["jti"],
        aud=payload.get("aud"),
        kid=ring.signing_key().kid,
        exp=payload["exp"],
    )
    click.echo(jwt)
