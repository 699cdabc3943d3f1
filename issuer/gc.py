"""Garbage collection: rows that nothing can use any more are deleted, so that the
issuer's tables stay bounded (every refresh used to add a row forever).

Each kind goes once it is past its own expiry plus the retention
(`ISSUER_GC_RETENTION`), which keeps recent history for an investigation:

- authorization codes: a used or expired code is refused either way, and a replay
  revokes its family only within the code's 60 s;
- refresh tokens, rotated, revoked or not: none past its expiry can be redeemed,
  and a rotated token is kept for reuse detection as long as it could be presented
  with success, that is until its own expiry;
- links (verification, reset, change of address).

Login sessions and passkey challenges go at their expiry, throttle entries after a
day (every window is at most an hour). The todo app prunes its own store as it
writes (`app/logins.py`, `app/oidc.py`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import ColumnElement, Engine, Table, delete

from issuer.accounts.models import (
    account_links,
    login_failures,
    login_sessions,
    webauthn_challenges,
)
from issuer.audit import audit, log_to_stderr
from issuer.config import Config
from issuer.oauth.codes import codes_table
from issuer.oauth.refresh_tokens import refresh_tokens_table
from issuer.schedule import Job, next_run

#: Throttle entries older than this count in no window.
THROTTLE_KEPT_FOR = 24 * 3600


def collect(
    engine: Engine, retention: int, now: float | None = None, throttle_window: int = 0
) -> dict[str, int]:
    """Delete what is past use; how many rows of each kind went. One transaction per
    kind, so that a large backlog does not hold one long lock. Throttle entries stay
    for a day, or for `throttle_window` (ISSUER_LOGIN_FAILURE_WINDOW) if longer."""
    now = time.time() if now is None else now
    throttle_kept = max(THROTTLE_KEPT_FOR, throttle_window)
    kept_until = now - retention
    plan: list[tuple[str, Table, ColumnElement[bool]]] = [
        ("authorization codes", codes_table, codes_table.c.expires_at < kept_until),
        (
            "refresh tokens",
            refresh_tokens_table,
            refresh_tokens_table.c.expires_at < kept_until,
        ),
        ("links", account_links, account_links.c.expires_at < kept_until),
        ("login sessions", login_sessions, login_sessions.c.expires_at <= now),
        ("passkey challenges", webauthn_challenges, webauthn_challenges.c.expires_at <= now),
        ("throttle entries", login_failures, login_failures.c.at < now - throttle_kept),
    ]
    collected: dict[str, int] = {}
    for kind, table, past_use in plan:
        with engine.begin() as conn:
            collected[kind] = conn.execute(delete(table).where(past_use)).rowcount
    return collected


def collect_and_audit(engine: Engine, config: Config) -> dict[str, int]:
    collected = collect(engine, config.gc_retention, throttle_window=config.login_failure_window)
    audit("gc.run", **{kind.replace(" ", "_"): count for kind, count in collected.items()})
    return collected


def jobs(app: Flask) -> list[Job]:
    """The scheduled run (`ISSUER_GC_INTERVAL`; none when 0)."""
    config = app.config["ISSUER"]
    if not config.gc_interval:
        return []
    engine = app.extensions["db"]
    return [Job("gc", config.gc_interval, lambda: collect_and_audit(engine, config))]


@click.command("gc")
@with_appcontext
def gc_command() -> None:
    """Delete expired codes, refresh tokens, links, sessions, challenges and throttle
    entries now (the scheduler does it every ISSUER_GC_INTERVAL seconds)."""
    log_to_stderr()
    config = current_app.config["ISSUER"]
    collected = collect_and_audit(current_app.extensions["db"], config)
    for kind, count in collected.items():
        click.echo(f"{kind}: {count} deleted")
    when = next_run(current_app.extensions["db"], "gc")
    if config.gc_interval and when is not None:
        click.echo(f"next scheduled run: {datetime.fromtimestamp(when, UTC):%Y-%m-%d %H:%M:%S} UTC")
