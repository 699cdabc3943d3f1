"""What the proxy shows at `/metrics` (see `servicemetrics`), read at scrape time from
the worker that answers: its JWKS fetches by URL and outcome, each cached set's age
and size, and its connection pools' use. Each worker has its own cache and pools, so
these carry the worker's pid."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
from flask import Flask
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from proxy.services import Services
from servicemetrics import Metrics


def init_app(app: Flask) -> None:
    services: Services = app.extensions["proxy"]
    metrics = Metrics("proxy")
    metrics.collector(lambda: _state(services))
    config = services.config
    metrics.init_app(
        app, serve=config.metrics, bind=config.metrics_bind, ready=lambda: _not_ready(services)
    )
    app.add_url_rule("/healthz", "healthz", lambda: ("ok\n", 200, {"Content-Type": "text/plain"}))


def _state(services: Services) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    pid = str(os.getpid())
    fetches = CounterMetricFamily(
        "proxy_jwks_fetches", "JWKS fetches, by URL and outcome.", labels=["url", "outcome", "pid"]
    )
    age = GaugeMetricFamily(
        "proxy_jwks_age_seconds", "Seconds since a JWKS was last renewed.", labels=["url", "pid"]
    )
    keys = GaugeMetricFamily("proxy_jwks_keys", "Keys cached, by JWKS URL.", labels=["url", "pid"])
    for key_set in services.jwks.key_sets():
        for outcome, count in key_set.fetches.items():
            fetches.add_metric([key_set.url, outcome, pid], count)
        seconds = key_set.age()
        if seconds is not None:
            age.add_metric([key_set.url, pid], seconds)
        keys.add_metric([key_set.url, pid], key_set.size())
    yield from (fetches, age, keys)
    pools = GaugeMetricFamily(
        "proxy_pool_connections",
        "Pooled database connections, by role, database and state.",
        labels=["role", "database", "state", "pid"],
    )
    waiting = GaugeMetricFamily(
        "proxy_pool_waiting_requests",
        "Requests waiting for a pooled connection, by role and database.",
        labels=["role", "database", "pid"],
    )
    for target, stats in services.pools.stats():
        labels = [target.role, target.database]
        pools.add_metric([*labels, "limit", pid], stats["size"])
        pools.add_metric([*labels, "open", pid], stats["open"])
        pools.add_metric([*labels, "busy", pid], stats["open"] - stats["idle"])
        waiting.add_metric([*labels, pid], stats["waiting"])
    yield from (pools, waiting)


def _not_ready(services: Services) -> str | None:
    """Ready when the database server accepts connections."""
    try:
        with psycopg.connect(services.config.admin_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return "the database does not answer"
    return None
