"""The issuer's /metrics and /readyz: parsed with prometheus_client's own parser, the
counters move with the traffic that should move them; served, every worker's requests
add up in one scrape; a broken key ring is "not ready"."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from issuer.keys import KeyRing
from tests.issuer.account_pages import log_in
from tests.issuer.oauth_flows import basic, csrf_token, register
from tests.issuer.served_issuer import served_issuer
from tests.support.ports import free_port

JWKS = "/.well-known/jwks.json"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def app(make_issuer_app: Callable[..., Flask], keys_dir: Path) -> Flask:
    KeyRing(keys_dir).init()
    return make_issuer_app()


def test_counters_move_with_the_traffic(app: Flask) -> None:
    http = app.test_client()
    before = http.get("/metrics").text
    for _ in range(3):
        assert http.get(JWKS).status_code == 200
    assert log_in(app.test_client(), "nobody@example.com", "wrong").status_code == 401
    service, secret = register(
        app, name="billing job", grant_types=("client_credentials",), redirect_uris=()
    )
    issued = http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(service.client_id, secret),
    )
    assert issued.status_code == 200
    after = http.get("/metrics").text
    jwks = {"route": JWKS, "method": "GET", "status": "200"}
    assert value(after, "issuer_http_requests_total", **jwks) == (
        value(before, "issuer_http_requests_total", **jwks) + 3
    )
    token = {"route": "/token", "method": "POST", "status": "200"}
    assert value(after, "issuer_http_requests_total", **token) == 1
    assert value(after, "issuer_http_request_duration_seconds_count", route="/token") == 1
    assert value(after, "issuer_audit_events_total", event="login.failed") == 1
    assert value(after, "issuer_tokens_issued_total", grant="client_credentials") == 1
    assert value(after, "issuer_keys", state="active") == 1
    assert value(after, "issuer_keys", state="next") == 1
    assert value(after, "issuer_rotation_allowed_in_seconds") > 3000


def test_readyz_says_what_is_wrong(app: Flask, keys_dir: Path) -> None:
    http = app.test_client()
    assert http.get("/readyz").text == "ready\n"
    # The ring loses its manifest on disk: nothing can be signed any more.
    (keys_dir / "manifest.json").rename(keys_dir / "manifest.json.bak")
    app.extensions["keyring"]._snapshot = None
    broken = http.get("/readyz")
    assert broken.status_code == 503 and broken.text.startswith("not ready: the key ring")


def test_metrics_can_be_turned_off(make_issuer_app: Callable[..., Flask], keys_dir: Path) -> None:
    KeyRing(keys_dir).init()
    http = make_issuer_app(metrics=False).test_client()
    assert http.get("/metrics").status_code == 404
    assert http.get("/readyz").status_code == 200


@pytest.mark.parametrize("separate_bind", [False, True])
def test_served_every_workers_requests_add_up(
    tmp_path: Path, keys_dir: Path, separate_bind: bool
) -> None:
    """`python -m issuer serve` with two workers, each answering some of the requests:
    any scrape counts them all, on the issuer's port or, with ISSUER_METRICS_BIND,
    only on that bind (every worker sharing it)."""
    KeyRing(keys_dir).init()
    bind = f"127.0.0.1:{free_port()}" if separate_bind else None
    with served_issuer(
        tmp_path,
        ISSUER_WORKERS="2",
        ISSUER_KEYS_DIR=str(keys_dir),
        ISSUER_DATABASE_URL=f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        ISSUER_DATA_DIR=str(tmp_path / "data"),
        **({"ISSUER_METRICS_BIND": bind} if bind else {}),
    ) as base:
        for _ in range(60):
            # A new connection each time: the kernel spreads them over both workers.
            with requests.get(base + JWKS, timeout=5, headers={"Connection": "close"}) as got:
                assert got.status_code == 200
        scrape_url = f"http://{bind}/metrics" if bind else base + "/metrics"
        if bind:
            assert requests.get(base + "/metrics", timeout=5).status_code == 404
        scrapes = [requests.get(scrape_url, timeout=5).text for _ in range(8)]
    route = {"route": JWKS, "method": "GET", "status": "200"}
    assert [value(s, "issuer_http_requests_total", **route) for s in scrapes] == [60.0] * 8
    assert all(value(s, "issuer_keys", state="active") == 1.0 for s in scrapes)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("lb-7f3a.42", True), ("", False), ("x" * 129, False), ('a"b', False), ("a b", False)],
)
def test_a_request_id_is_answered_and_written_in_the_audit_line(
    app: Flask, caplog: pytest.LogCaptureFixture, given: str, kept: bool
) -> None:
    """A reverse proxy's plain id is kept; anything else (nothing, too long, quotes,
    spaces: material for a forged log line) is replaced by a new one."""
    caplog.set_level("INFO", logger="issuer.audit")
    browser = app.test_client()
    page = browser.get("/login")
    answer = browser.post(
        "/login",
        data={
            "email": "nobody@example.com",
            "password": "wrong",
            "csrf_token": csrf_token(page.text),
        },
        headers={"X-Request-Id": given},
    )
    assert answer.status_code == 401
    request_id = answer.headers["X-Request-Id"]
    assert (request_id == given) is kept
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request_id)
    (line,) = [
        json.loads(r.getMessage()) for r in caplog.records if "login.failed" in r.getMessage()
    ]
    assert line["request_id"] == request_id


def test_made_up_methods_share_one_label(app: Flask) -> None:
    """Anyone can send any method name: each must not become a series of its own."""
    http = app.test_client()
    for method in ("AAAA", "AAAB", "ZZZZ1"):
        http.open("/login", method=method)
    metrics = samples(http.get("/metrics").text)
    methods = {
        dict(labels)["method"] for name, labels in metrics if name == "issuer_http_requests_total"
    }
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
