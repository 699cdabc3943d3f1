"""The fast paths /token and the JWKS take must keep the slow paths' behaviour."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from issuer.audit import audit
from issuer.tokens import claims_json
from tests.issuer.oauth_flows import basic, log_in, make_user, register

JWKS = "/.well-known/jwks.json"


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
