"""Prometheus metrics and readiness of a Flask service, across gunicorn's workers.

`Metrics` counts and times every request by route, method and status and serves
`/metrics` in Prometheus' text format and `/readyz` from the service's own checks;
it also gives every request an id (`request_ids`).
A service adds its counters with `counter()` and its scrape-time gauges (state kept
elsewhere: a key ring, a pool) with `collector()`.

Under gunicorn each worker is a process, and a scrape reaches one of them: the
hooks below give the workers one directory (prometheus_client's multiprocess
mode), so every scrape sees the whole service. Without it (tests, `flask run`)
each app keeps its own registry.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from servicemetrics import request_ids, separate_bind

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Request times in seconds: a JWKS answer is ~0.1 ms, a password hash ~50 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@functools.lru_cache(maxsize=4096)
def labelled(metric: MetricWrapperBase, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once: prometheus_client validates the values
    and takes a lock on every call (a few per request on the hot paths). Bounded,
    though callers pass only values from small fixed sets."""
    return metric.labels(*values)


class Metrics:
    """One service's metrics, named `<prefix>_…`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.directory = os.environ.get(MULTIPROCESS_DIR)
        if self.directory:
            # Chosen per process, before its first metric: values live in mmapped
            # files of the shared directory, one per worker.
            values.ValueClass = values.MultiProcessValue()
        self._own = None if self.directory else CollectorRegistry()
        self._collectors: list[Collector] = []
        self.bind: str | None = None
        self.bind_server: WSGIServer | None = None
        self.requests = self.counter(
            "http_requests", "HTTP requests answered.", ("route", "method", "status")
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self._own,
        )

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(f"{self.prefix}_{name}", documentation, labels, registry=self._own)

    def collector(self, collect: Callable[[], Iterable[Any]]) -> None:
        """Gauges read at scrape time (`collect` yields metric families)."""
        custom = _Collector(collect)
        self._collectors.append(custom)
        if self._own is not None:
            self._own.register(custom)

    def exposition(self) -> bytes:
        if self._own is not None:
            return generate_latest(self._own)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)
        for custom in self._collectors:
            registry.register(custom)
        return generate_latest(registry)

    def init_app(
        self,
        app: Flask,
        *,
        serve: bool,
        ready: Callable[[], str | None],
        bind: str | None = None,
    ) -> None:
        """Count every request; `/metrics` when `serve`, on the service's port or on
        `bind` (only there, once a serving worker calls `start_separate_bind`); `/readyz`:
        200, or 503 with what `ready()` says is wrong."""
        app.extensions["metrics"] = self
        request_ids.init_app(app)
        app.before_request(_start_timer)
        app.after_request(self._observe)
        self.bind = bind if serve else None
        if serve and not bind:
            app.add_url_rule("/metrics", "metrics", self._serve)
        app.add_url_rule("/readyz", "readyz", lambda: _readiness(ready))

    def start_separate_bind(self) -> None:
        """Listen on the metrics bind, if there is one: in serving workers only, never
        in a CLI command that builds the app."""
        if self.bind and self.bind_server is None:
            self.bind_server = separate_bind.serve(self.bind, self.exposition)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request answered (for handlers Flask does not see, such as a WSGI
        middleware in front of it)."""
        # Any method name reaches here (gunicorn accepts made-up ones): a label per
        # name would let anyone grow the series without end.
        method = method if method in METHODS else "other"
        labelled(self.requests, route, method, str(status)).inc()
        labelled(self.latency, route).observe(seconds)

    def _observe(self, response: Response) -> Response:
        started = g.pop("_metrics_started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        self.observe(route, request.method, response.status_code, time.perf_counter() - started)
        return response

    def _serve(self) -> Response:
        return Response(self.exposition(), content_type=CONTENT_TYPE_LATEST)


def observed(
    extensions: Mapping[str, Any],
    route: str,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    answer: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
) -> Iterable[bytes]:
    """Run the WSGI `answer` for `route` and count it in the app's request metrics:
    for endpoints served by a middleware in front of Flask, which Flask never sees.
    The time is until the body is ready, not until it is sent."""
    metrics = extensions.get("metrics")
    if metrics is None:
        return answer(environ, start_response)
    started = time.perf_counter()
    statuses: list[str] = []

    def recording(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        statuses.append(status)
        return start_response(status, headers, *exc_info)

    body = answer(environ, recording)
    if statuses:
        status = int(statuses[-1][:3])
        try:
            metrics.observe(route, environ["REQUEST_METHOD"], status, time.perf_counter() - started)
        except Exception:  # counting must never cost the answer (nor its pooled connection)
            log.exception("cannot count a request to %s", route)
    return body


class _Collector(Collector):
    def __init__(self, collect: Callable[[], Iterable[Any]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Any]:
        return self._collect()


def _start_timer() -> None:
    g._metrics_started = time.perf_counter()


def _readiness(ready: Callable[[], str | None]) -> tuple[str, int, dict[str, str]]:
    problem = ready()
    if problem is not None:
        return f"not ready: {problem}\n", 503, {"Content-Type": "text/plain"}
    return "ready\n", 200, {"Content-Type": "text/plain"}


@contextlib.contextmanager
def shared_directory() -> Iterator[str]:
    """For a server that forks its workers inside the block (granian): one fresh
    directory they inherit through the environment, removed afterwards."""
    directory = tempfile.mkdtemp(prefix="metrics-")
    os.environ[MULTIPROCESS_DIR] = directory
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROCESS_DIR, None)
        shutil.rmtree(directory, ignore_errors=True)


# -- gunicorn server hooks ---------------------------------------------------------------


def on_starting(server: Any) -> None:
    """In the master, before any worker: a fresh directory the workers inherit, owned
    by the user they run as (gunicorn's `--user`/`--group` when started as root)."""
    directory = tempfile.mkdtemp(prefix="metrics-")
    if os.geteuid() == 0:
        os.chown(directory, server.cfg.uid, server.cfg.gid)
    os.environ[MULTIPROCESS_DIR] = directory


def post_worker_init(worker: Any) -> None:
    """In each worker, once its app is built: the metrics bind, if the app has one."""
    metrics = getattr(worker.wsgi, "extensions", {}).get("metrics")
    if metrics is not None:
        metrics.start_separate_bind()


def child_exit(_server: object, worker: Any) -> None:
    """A dead worker's gauges are dropped (its counters stay in the totals)."""
    multiprocess.mark_process_dead(worker.pid, os.environ.get(MULTIPROCESS_DIR))


def on_exit(_server: object) -> None:
    directory = os.environ.pop(MULTIPROCESS_DIR, None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
