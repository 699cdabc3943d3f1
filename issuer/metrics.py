"""What the issuer counts at `/metrics` (see `servicemetrics`): every audit event by
name (logins and their failures, throttles, refresh reuse and retries, key changes),
tokens issued by grant, and the key ring as it is at scrape time (keys by state,
the active key's age, seconds until a rotation is allowed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Flask, current_app, has_app_context
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from issuer.audit import audited
from issuer.keys import KeyRingError
from issuer.keys.manifest import KeyState
from servicemetrics import Metrics, labelled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Counters:
    events: Counter
    tokens: Counter


def init_app(app: Flask) -> None:
    metrics = Metrics("issuer")
    app.extensions["issuer_counters"] = _Counters(
        events=metrics.counter("audit_events", "Audit events, by name.", ("event",)),
        tokens=metrics.counter("tokens_issued", "Tokens issued at /token, by grant.", ("grant",)),
    )
    metrics.collector(lambda: _key_ring(app))
    config = app.config["ISSUER"]
    metrics.init_app(
        app, serve=config.metrics, bind=config.metrics_bind, ready=lambda: _not_ready(app)
    )


@audited.connect
def _count(_sender: object, event: str, fields: dict[str, object]) -> None:
    counters = current_app.extensions.get("issuer_counters") if has_app_context() else None
    if counters is None:
        return
    labelled(counters.events, event).inc()
    if event == "oauth.token_issued":
        labelled(counters.tokens, str(fields.get("grant"))).inc()


def _key_ring(app: Flask) -> Iterator[GaugeMetricFamily]:
    try:
        manifest = app.extensions["keyring"].manifest()
    except KeyRingError:
        return  # /readyz says why
    now = time.time()
    keys = GaugeMetricFamily("issuer_keys", "Keys of the ring, by state.", labels=["state"])
    for state in KeyState:
        keys.add_metric([state.value], sum(1 for key in manifest.keys if key.state is state))
    yield keys
    yield GaugeMetricFamily(
        "issuer_active_key_age_seconds",
        "Seconds since the active key began to sign.",
        value=now - (manifest.active.activated_at or now),
    )
    allowed_at = manifest.next.rotation_safe_at(app.config["ISSUER"].rotation_min_published)
    yield GaugeMetricFamily(
        "issuer_rotation_allowed_in_seconds",
        "Seconds until `keys rotate` is allowed (0: now).",
        value=max(0.0, allowed_at - now),
    )


def _not_ready(app: Flask) -> str | None:
    """Ready when the database answers and the key ring can sign."""
    try:
        with app.extensions["db"].connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return "the database does not answer"
    try:
        app.extensions["keyring"].signing_key()
    except KeyRingError as error:
        # The detail names paths or the database: for the log, not for any caller.
        log.error("not ready: the key ring cannot sign: %s", error)
        return "the key ring cannot sign"
    return None
