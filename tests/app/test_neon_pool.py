"""The app's connections to the SQL endpoint follow the environment's proxy and CA
settings, as its `requests` calls to the issuer do."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import urllib3
from flask import Flask

from app import neon
from app.config import AppConfig
from app.neon import pool_for
from neon_http import EndpointUnreachable, NeonHTTP

ENDPOINT = "https://apiauth.us-east-2.aws.neon.tech/sql"
PROXY_SETTINGS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
CA_SETTINGS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_SETTINGS + CA_SETTINGS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_no_proxy_setting_connects_directly_with_requests_ca_bundle() -> None:
    pool = pool_for(ENDPOINT)
    assert not isinstance(pool, urllib3.ProxyManager)
    assert pool.connection_pool_kw["ca_certs"] == requests.certs.where()


def test_https_proxy_is_used_for_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    pool = pool_for(ENDPOINT)
    assert isinstance(pool, urllib3.ProxyManager)
    assert pool.proxy.host == "proxy.internal" and pool.proxy.port == 3128


def test_no_proxy_covering_the_endpoint_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", ".neon.tech")
    assert not isinstance(pool_for(ENDPOINT), urllib3.ProxyManager)


def test_an_http_endpoint_takes_the_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://secure.internal:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain.internal:3128")
    pool = pool_for("http://db.internal:4444/sql")
    assert isinstance(pool, urllib3.ProxyManager) and pool.proxy.host == "plain.internal"


def test_a_private_ca_bundle_is_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/private-ca.pem")
    assert pool_for(ENDPOINT).connection_pool_kw["ca_certs"] == "/etc/ssl/private-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/first.pem")
    assert pool_for(ENDPOINT).connection_pool_kw["ca_certs"] == "/etc/ssl/first.pem"


def test_an_unusable_proxy_is_an_unreachable_database_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The page says the database cannot be reached (a 503), and the log says why."""
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.setattr(neon, "_local", threading.local())
    app = Flask(__name__)
    app.config["APP"] = AppConfig()
    with app.app_context(), pytest.raises(EndpointUnreachable):
        neon.client("a-token")
    assert "socks5" in caplog.text


def test_a_ca_directory_is_trusted_as_a_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))
    kw = pool_for(ENDPOINT).connection_pool_kw
    assert kw["ca_cert_dir"] == str(tmp_path) and "ca_certs" not in kw


def test_a_proxy_without_a_scheme_is_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:3128")
    pool = pool_for(ENDPOINT)
    assert isinstance(pool, urllib3.ProxyManager)
    assert (pool.proxy.scheme, pool.proxy.host, pool.proxy.port) == ("http", "proxy.internal", 3128)


class _Proxy(BaseHTTPRequestHandler):
    """An HTTP proxy that answers itself: records what reached it, returns an empty result."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.path, self.headers))  # type: ignore[attr-defined]
        body = json.dumps(
            {"rows": [], "fields": [], "command": "SELECT", "rowCount": 0, "rowAsArray": False}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_the_proxy_gets_its_credentials_and_the_endpoint_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://ops:s3cret@127.0.0.1:{port}")
        endpoint = "http://db.internal:4444/sql"
        pool = pool_for(endpoint)
        NeonHTTP("postgresql://authenticated@db.internal/neondb", auth_token="jwt",
                 endpoint=endpoint, pool=pool).query("select 1")  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    ((path, headers),) = server.seen  # type: ignore[attr-defined]
    assert path == endpoint
    assert headers["Proxy-Authorization"] == "Basic b3BzOnMzY3JldA=="  # ops:s3cret
    assert headers["Authorization"] == "Bearer jwt"
