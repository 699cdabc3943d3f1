"""The fast paths /token and the JWKS take must keep the slow paths' behaviour."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from authlib.oauth2.rfc6749 import OAuth2Request
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict
from werkzeug.middleware.proxy_fix import ProxyFix

from issuer.audit import audit
from issuer.oauth.form_post import FormPostRequest
from issuer.tokens import claims_json
from tests.issuer.oauth_flows import basic, log_in, make_user, register

JWKS = "/.well-known/jwks.json"
# A chunked request as servers hand it over: no length, a stream that ends by itself.
CHUNKED = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
# A valid client_credentials body of exactly the 8 KiB limit.
_PADDED = b"grant_type=client_credentials&pad=".ljust(8192, b"a")


def _service_token(app: Flask, headers: dict[str, str] | None = None):
    client, secret = register(
        app, name="billing job", grant_types=("client_credentials",), redirect_uris=()
    )
    return app.test_client().post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={**basic(client.client_id, secret), **(headers or {})},
    )


def test_token_without_a_cookie_sets_none_and_does_not_vary_on_it(oauth_app: Flask) -> None:
    response = _service_token(oauth_app)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


def test_token_with_a_forged_session_cookie_still_works_and_sets_none(oauth_app: Flask) -> None:
    response = _service_token(oauth_app, {"Cookie": "issuer_session=forged.value.sig"})
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_a_logged_in_session_survives_requests_that_ignore_it(oauth_app: Flask) -> None:
    make_user(oauth_app)
    browser = oauth_app.test_client()
    log_in(browser, "alice@example.com")
    assert browser.get(JWKS).status_code == 200
    assert browser.get("/.well-known/openid-configuration").status_code == 200
    page = browser.get("/account")
    assert page.status_code == 200
    assert b"alice@example.com" in page.data


def test_jwks_ignores_the_query_string(keys_app: Flask) -> None:
    http = keys_app.test_client()
    assert http.get(JWKS + "?cache-buster=1").data == http.get(JWKS).data


@pytest.mark.parametrize("method", ["options", "patch"])
def test_jwks_refuses_other_methods_naming_the_allowed_ones(keys_app: Flask, method: str) -> None:
    response = getattr(keys_app.test_client(), method)(JWKS)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_only_the_exact_jwks_path_is_served_before_flask(keys_app: Flask) -> None:
    http = keys_app.test_client()
    assert http.get(JWKS + "/").status_code == 404
    assert http.get("/.well-known/JWKS.json").status_code == 404


def test_jwks_follows_a_rotation_with_new_headers(keys_app: Flask, ring) -> None:
    http = keys_app.test_client()
    before = http.get(JWKS)
    ring.rotate(min_published=0)
    after = http.get(JWKS)
    assert after.headers["ETag"] == ring.jwks().etag != before.headers["ETag"]
    assert int(after.headers["Content-Length"]) == len(after.data) == len(ring.jwks().body)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(), _json_values, max_size=12))
def test_claims_json_is_byte_for_byte_the_stdlib_compact_encoding(claims: dict) -> None:
    assert claims_json(claims) == json.dumps(claims, separators=(",", ":")).encode("ascii")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [float("-inf")]])
def test_claims_json_refuses_non_finite_numbers(bad: object) -> None:
    with pytest.raises(ValueError):
        claims_json({"sub": "x", "n": bad})


def test_audit_lines_carry_a_utc_millisecond_timestamp_of_now(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        before = datetime.now(UTC)
        audit("test.event", n=1)
        after = datetime.now(UTC)
    line = json.loads(caplog.records[-1].getMessage())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    ts = datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= ts <= after
    assert line == {"ts": line["ts"], "event": "test.event", "n": 1}


@pytest.mark.parametrize("endpoint", ["/token", "/revoke"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "BREW"])
def test_form_endpoints_refuse_other_methods_naming_post(
    oauth_app: Flask, endpoint: str, method: str
) -> None:
    response = oauth_app.test_client().open(endpoint, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if method != "HEAD":
        assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize("endpoint", ["/token/", "/TOKEN", "/revoke/x"])
def test_only_the_exact_form_paths_are_served_before_flask(oauth_app: Flask, endpoint: str) -> None:
    assert oauth_app.test_client().post(endpoint, data={}).status_code == 404


@pytest.mark.parametrize(
    ("given", "kept"), [("lb-7f3a.42", True), ("", False), ('a"b', False), ("x" * 129, False)]
)
def test_token_answers_the_request_id_and_audits_under_it(
    oauth_app: Flask, caplog: pytest.LogCaptureFixture, given: str, kept: bool
) -> None:
    caplog.set_level("INFO", logger="issuer.audit")
    response = _service_token(oauth_app, {"X-Request-Id": given})
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    assert (request_id == given) is kept
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request_id)
    (line,) = [
        json.loads(r.getMessage()) for r in caplog.records if "oauth.token_issued" in r.getMessage()
    ]
    assert line["request_id"] == request_id


@pytest.mark.parametrize(
    ("body", "extra", "status"),
    [
        (b"grant_type=client_credentials&scope=\xff", {}, 400),  # raw bytes, not UTF-8
        (b"grant_type=client_credentials&scope=%FF", {}, 400),  # an escape, not UTF-8
        (b"grant_type=client_credentials", {"CONTENT_LENGTH": "400"}, 400),  # cut short
        # Chunked (no length; the server ends the stream itself) past the limit: refused,
        # not cut at 8 KiB with whatever follows (here a second grant_type) unread.
        (_PADDED + b"&grant_type=evil", CHUNKED, 413),
        (_PADDED + b"&", CHUNKED, 413),  # one byte past
    ],
)
def test_token_refuses_bodies_it_cannot_read_whole(
    oauth_app: Flask, body: bytes, extra: dict, status: int
) -> None:
    response = _raw_token_request(oauth_app, body, extra)
    assert response.status_code == status, response.text
    assert response.json["error"] == "invalid_request"


def test_a_chunked_body_up_to_the_limit_is_read_whole(oauth_app: Flask) -> None:
    assert len(_PADDED) == 8192
    response = _raw_token_request(oauth_app, _PADDED, CHUNKED)
    assert response.status_code == 200, response.text


def _raw_token_request(app: Flask, body: bytes, environ: dict):
    """A service's client_credentials request with `body` as sent, `environ` as the
    server would set it."""
    client, secret = register(
        app, name="billing job", grant_types=("client_credentials",), redirect_uris=()
    )
    return app.test_client().post(
        "/token",
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        headers=basic(client.client_id, secret),
        environ_overrides=environ,
    )


def test_an_unexpected_failure_is_a_logged_json_500(
    oauth_app: Flask, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    oauth_app.testing = False
    oauth_app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken(*_args: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(oauth_app.extensions["oauth"], "create_token_response", broken)
    response = _service_token(oauth_app)
    assert response.status_code == 500
    assert response.json == {"error": "server_error"}
    assert response.headers["Cache-Control"] == "no-store"
    assert "the database went away" not in response.text
    assert "X-Request-Id" in response.headers
    assert any("Exception on /token" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("base_url", "status"),
    [
        ("http://issuer.example.com", 400),
        ("https://issuer.example.com", 200),
        ("http://127.0.0.1", 200),
    ],
)
def test_token_over_plain_http_is_refused_but_on_loopback(
    oauth_app: Flask, base_url: str, status: int
) -> None:
    client, secret = register(
        oauth_app, name="billing job", grant_types=("client_credentials",), redirect_uris=()
    )
    response = oauth_app.test_client().post(
        "/token",
        base_url=base_url,
        data={"grant_type": "client_credentials"},
        headers=basic(client.client_id, secret),
    )
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json["error"] == "insecure_transport"


def test_insecure_transport_setting_is_read_on_every_request(
    oauth_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transport verdict is cached per scheme and host, but not the setting that
    overrides it: turning AUTHLIB_INSECURE_TRANSPORT off takes effect at once."""
    client, secret = register(
        oauth_app, name="billing job", grant_types=("client_credentials",), redirect_uris=()
    )
    http = oauth_app.test_client()

    def status() -> int:
        return http.post(
            "/token",
            base_url="http://plain.example.com",
            data={"grant_type": "client_credentials"},
            headers=basic(client.client_id, secret),
        ).status_code

    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    assert status() == 200
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT")
    assert status() == 400


def test_behind_a_tls_proxy_tokens_are_issued_over_its_https(
    make_app: Callable[..., Flask],
) -> None:
    """Behind a TLS-terminating proxy the request arrives over http: with
    ISSUER_TRUSTED_PROXIES the proxy's X-Forwarded-Proto says https, and /token
    answers (it was `insecure_transport` on every request). A client reaching the
    issuer over plain http with no such header is still refused."""
    app = make_app(trusted_proxies=1, issuer_url="https://login.example.com")
    client, secret = register(
        app, name="billing job", grant_types=("client_credentials",), redirect_uris=()
    )
    http = app.test_client()
    for forwarded, status in (({"X-Forwarded-Proto": "https"}, 200), ({}, 400)):
        response = http.post(
            "/token",
            base_url="http://login.example.com",
            data={"grant_type": "client_credentials"},
            headers={**basic(client.client_id, secret), **forwarded},
        )
        assert response.status_code == status, (forwarded, response.text)
    assert response.json["error"] == "insecure_transport"


def test_token_honours_trusted_hosts(oauth_app: Flask) -> None:
    """Flask refuses a Host outside TRUSTED_HOSTS; so does /token, served before it."""
    oauth_app.config["TRUSTED_HOSTS"] = ["issuer.example.com"]
    client, secret = register(
        oauth_app, name="billing job", grant_types=("client_credentials",), redirect_uris=()
    )
    http = oauth_app.test_client()
    for host, status in (("evil.example.com", 400), ("issuer.example.com", 200)):
        response = http.post(
            "/token",
            base_url=f"https://{host}",
            data={"grant_type": "client_credentials"},
            headers=basic(client.client_id, secret),
        )
        assert response.status_code == status, (host, response.text)


def test_behind_trusted_proxies_the_address_is_fixed_before_any_endpoint(
    make_app: Callable[..., Flask],
) -> None:
    """ProxyFix wraps everything, the endpoints served in front of Flask included
    (throttles key on the client address: a proxy's own address would be shared)."""
    app = make_app(trusted_proxies=1)
    assert isinstance(app.wsgi_app, ProxyFix)


def test_the_form_request_sets_every_field_authlib_request_has() -> None:
    """FormPostRequest sets OAuth2Request's fields itself (skipping its per-request
    URL parsing): an authlib upgrade that adds one must show up here."""
    environ = {
        "REQUEST_METHOD": "POST",
        "wsgi.url_scheme": "https",
        "HTTP_HOST": "issuer.example.com",
        "PATH_INFO": "/token",
    }
    ours = FormPostRequest(environ, MultiDict({"grant_type": "client_credentials"}))
    theirs = OAuth2Request("POST", "https://issuer.example.com/token", headers={})
    assert set(vars(theirs)) <= set(vars(ours))
    assert ours.uri == theirs.uri
    assert ours.payload.grant_type == "client_credentials"
