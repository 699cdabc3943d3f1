"""`python -m issuer keys …`: operating the key ring.

The commands run in the issuer's app context and use its KeyRing
(`app.extensions["keyring"]`), so they see exactly the keys the server signs
with. Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask import current_app

from issuer.audit import audit
from issuer.cli import command_group, operator_errors
from issuer.config import Config
from issuer.keys import KeyRecord, KeyRing, KeyRingError, KeyState, Manifest, autorotation
from issuer.keys.database_store import DatabaseKeyStore, import_files
from issuer.keys.policy import check_rotation_policy
from issuer.keys.store import KeyStore


def _ring() -> KeyRing:
    return current_app.extensions["keyring"]


def _config() -> Config:
    return current_app.config["ISSUER"]


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


keys = command_group("keys", "Manage the ES256 signing keys in ISSUER_KEYS_DIR.")
_operator_errors = operator_errors(KeyRingError)


@keys.command("init")
@_operator_errors
def init_command() -> None:
    """Create the ring: an active key and a published next key."""
    manifest = _ring().init()
    click.echo(f"active {manifest.active.kid}")
    click.echo(f"next   {manifest.next.kid}")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_operator_errors
def list_command(as_json: bool) -> None:
    """Show every key, its state and times, and when the next rotation or prune is safe."""
    ring, config = _ring(), _config()
    rows = []
    for record in ring.manifest().keys:
        row = record.to_json()
        del row["jwk"]
        row["rotation_safe_at"] = (
            record.rotation_safe_at(config.rotation_min_published)
            if record.state is KeyState.NEXT
            else None
        )
        row["prunable_at"] = record.prunable_at(config.access_token_ttl, config.leeway)
        if record.state is KeyState.REVOKED:
            row["prunable_at"] = record.revoked_at
        rows.append(row)
    scheduled = autorotation.next_rotation(ring.manifest(), config)
    if as_json:
        document = {"now": int(ring.clock()), "next_scheduled_rotation": scheduled, "keys": rows}
        click.echo(json.dumps(document, indent=2))
        return
    header = ("KID", "STATE", "CREATED", "ACTIVATED", "RETIRED", "REVOKED", "NOTE")
    lines = [header]
    for row in rows:
        note = ""
        if row["rotation_safe_at"] is not None:
            note = f"rotation safe from {_when(row['rotation_safe_at'])}"
        elif row["prunable_at"] is not None:
            note = f"prunable from {_when(row['prunable_at'])}"
        lines.append(
            (
                row["kid"],
                row["state"],
                _when(row["created_at"]),
                _when(row["activated_at"]),
                _when(row["retired_at"]),
                _when(row["revoked_at"]),
                note,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    if scheduled is not None:
        click.echo(f"next scheduled rotation: {_when(scheduled)} (ISSUER_ROTATION_PERIOD)")
    else:
        click.echo("no scheduled rotation (ISSUER_ROTATION_PERIOD=0): rotate with `keys rotate`")


@keys.command("rotate")
@click.option(
    "--force",
    is_flag=True,
    help="Rotate even if the next key was published too recently: verifiers with an "
    "older cached JWKS reject its tokens until they refetch.",
)
@_operator_errors
def rotate_command(force: bool) -> None:
    """Retire the active key, activate the next one, publish a new next key."""
    config = _config()
    check_rotation_policy(config.rotation_min_published, config.jwks_max_age)
    retired, manifest = _ring().rotate(min_published=config.rotation_min_published, force=force)
    active = manifest.active
    early = active.published_at + config.rotation_min_published - active.activated_at
    if early > 0:
        click.echo(
            f"warning: {active.kid} signs {early} s before every JWKS cache is sure to hold it; "
            "verifiers with an older cache reject its tokens until they refetch",
            err=True,
        )
    click.echo(
        f"retired {retired.kid} (prunable from "
        f"{_when(retired.prunable_at(config.access_token_ttl, config.leeway))})"
    )
    click.echo(f"active  {manifest.active.kid}")
    click.echo(
        f"next    {manifest.next.kid} (rotation safe from "
        f"{_when(manifest.next.rotation_safe_at(config.rotation_min_published))})"
    )


@keys.command("prune")
@_operator_errors
def prune_command() -> None:
    """Delete retired keys whose tokens have all expired (and revoked keys)."""
    config = _config()
    gone = _ring().prune(max_token_lifetime=config.access_token_ttl, leeway=config.leeway)
    for kid in gone:
        click.echo(f"pruned {kid}")
    if not gone:
        click.echo("nothing to prune")


# What a revocation cannot do: verifiers that cached the JWKS keep trusting the key
# until they refetch it (Neon's proxy refreshes after 5 minutes).
_CACHED_UNTIL_REFETCH = (
    "  - tokens it signed stop verifying when verifiers refetch the JWKS; until then\n"
    "    their caches still hold it (Neon's proxy refreshes after about 5 minutes);\n"
)


def _revoke_consequences(record: KeyRecord, manifest: Manifest, now: int) -> str:
    if record.state is KeyState.ACTIVE:
        following = manifest.next
        return (
            f"{record.kid} is the ACTIVE key. Revoking it:\n"
            f"  - removes it from the JWKS now: it signed the access tokens of current sessions;\n"
            f"{_CACHED_UNTIL_REFETCH}"
            f"  - makes next key {following.kid} active at once;\n"
            f"    it was published {now - following.published_at} s ago: verifiers whose cached\n"
            f"    JWKS is older reject its tokens until they refetch;\n"
            f"  - creates a new next key, so the next rotation waits the full publication delay."
        )
    if record.state is KeyState.NEXT:
        return (
            f"{record.kid} is the NEXT key (it has signed nothing). Revoking it removes it\n"
            f"from the JWKS now and creates a new next key, so the next rotation waits the\n"
            f"full publication delay."
        )
    return (
        f"{record.kid} is a {record.state} key. Revoking it:\n"
        f"  - removes it from the JWKS now;\n"
        f"{_CACHED_UNTIL_REFETCH.rstrip(';' + chr(10))}."
    )


# A kid is a base64url thumbprint and may begin with "-": read it as the
# argument, not as an unknown option.
@keys.command("revoke", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_operator_errors
def revoke_command(kid: str, yes: bool) -> None:
    """Emergency: unpublish key KID at once (for a leaked private key).

    Revoking the active key makes the next key active immediately (without the
    publication delay) and creates a new next key. The consequences are printed
    before the confirmation prompt.
    """
    ring = _ring()
    manifest = ring.manifest()
    record = manifest.get(kid)
    if record.state is KeyState.REVOKED:
        raise click.ClickException(f"key {kid} is already revoked")
    click.echo(_revoke_consequences(record, manifest, int(ring.clock())), err=True)
    if not yes:
        click.confirm("Revoke it?", abort=True, err=True)
    manifest = ring.revoke(kid)
    click.echo(f"revoked {kid}")
    click.echo(f"active  {manifest.active.kid}")
    click.echo(f"next    {manifest.next.kid}")


@keys.command("import")
@_operator_errors
def import_command() -> None:
    """Bring the file ring in ISSUER_KEYS_DIR into the database ring (ISSUER_KEYS_STORE=
    database), keeping every kid; done by the first start too. The files stay."""
    config = _config()
    ring = _ring()
    if not isinstance(ring.store, DatabaseKeyStore):
        raise KeyRingError("set ISSUER_KEYS_STORE=database (and ISSUER_KEYS_MASTER_KEY) first")
    kids = import_files(KeyStore(config.keys_dir, config.keys_passphrase), ring.store)
    audit("keys.import", kids=kids, source=str(config.keys_dir))
    click.echo(f"imported {len(kids)} keys from {config.keys_dir}/: {' '.join(kids)}")


@keys.command("reseal")
@_operator_errors
def reseal_command() -> None:
    """Seal every private key of the database ring under ISSUER_KEYS_MASTER_KEY (after
    moving the former master key to ISSUER_KEYS_MASTER_KEY_FALLBACKS)."""
    ring = _ring()
    if not isinstance(ring.store, DatabaseKeyStore):
        raise KeyRingError("only the database ring (ISSUER_KEYS_STORE=database) is sealed")
    count = ring.store.reseal()
    audit("keys.reseal", keys=count)
    click.echo(f"resealed {count} keys under the current master key")
