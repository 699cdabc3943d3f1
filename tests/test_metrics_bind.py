"""`<SERVICE>_METRICS_BIND`: `/metrics` only on a bind of its own, for each service."""

from __future__ import annotations

import socket

import pytest
import requests
from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST

from app.config import AppConfig
from envsettings import SettingError
from issuer.config import Config
from proxy.config import ProxyConfig
from servicemetrics import Metrics
from tests.support.ports import free_port


@pytest.fixture
def served() -> tuple[Flask, str]:
    app = Flask(__name__)
    app.add_url_rule("/hello", "hello", lambda: "hi")
    port = free_port()
    bind = f"127.0.0.1:{port}"
    metrics = Metrics("demo")
    metrics.init_app(app, serve=True, ready=lambda: None, bind=bind)
    with socket.socket() as probe:  # nothing listens until a serving worker says so
        probe.bind(("127.0.0.1", port))
    metrics.start_separate_bind()
    yield app, f"http://{bind}"
    assert metrics.bind_server is not None
    metrics.bind_server.shutdown()
    metrics.bind_server.server_close()


def test_metrics_move_off_the_service_port(served: tuple[Flask, str]) -> None:
    app, metrics_url = served
    http = app.test_client()
    for _ in range(3):
        assert http.get("/hello").status_code == 200
    assert http.get("/metrics").status_code == 404
    assert http.get("/readyz").status_code == 200  # probes stay on the service's port
    scrape = requests.get(f"{metrics_url}/metrics", timeout=5)
    assert scrape.status_code == 200
    assert scrape.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert 'demo_http_requests_total{method="GET",route="/hello",status="200"} 3.0' in scrape.text


def test_the_metrics_bind_answers_nothing_else(served: tuple[Flask, str]) -> None:
    _, metrics_url = served
    assert requests.get(f"{metrics_url}/hello", timeout=5).status_code == 404
    assert requests.get(f"{metrics_url}/readyz", timeout=5).status_code == 404
    assert requests.post(f"{metrics_url}/metrics", timeout=5).status_code == 405


@pytest.mark.parametrize(
    ("read", "name"),
    [
        (Config.from_env, "ISSUER_METRICS_BIND"),
        (AppConfig.from_env, "APP_METRICS_BIND"),
        (ProxyConfig.from_env, "PROXY_METRICS_BIND"),
    ],
)
def test_each_service_reads_its_metrics_bind(read, name: str) -> None:
    assert read({name: "127.0.0.1:9101"}).metrics_bind == "127.0.0.1:9101"
    assert read({name: "[::1]:9101"}).metrics_bind == "[::1]:9101"
    assert read({}).metrics_bind is None
    for wrong in ("9101", "localhost", "127.0.0.1:", "127.0.0.1:70000", ":9101"):
        with pytest.raises(SettingError, match=f"{name} must be host:port"):
            read({name: wrong})
