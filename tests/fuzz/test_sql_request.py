"""Neon's `/sql` endpoint of the proxy under arbitrary bodies, headers and tokens.

Requests go into the real proxy app in process (real PostgreSQL behind it, the
token checked against the JWKS served over loopback). Whatever arrives, the
answer is one of the documented statuses with Neon's JSON error body, never a
500 and never a stack trace.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask import Flask
from hypothesis import currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from proxy.jwt import NOT_A_JWT
from tests.fuzz.strategies import header_text, json_values, token_claims
from tests.fuzz.tokens import signed
from tests.fuzz.wsgi import Answer, assert_clean, call, environ
from tests.proxy.support import SigningKey, b64, b64json

CONNECTION = "postgresql://authenticated@ep-fuzz.localhost/neondb"
# Read-only statements: the fuzz must not leave rows behind in the shared database.
QUERIES = [
    "select $1::text as a",
    "select $1 as a, $2 as b",
    "select $1::int[] as a",
    "select $1::jsonb as a",
    "select $1::numeric as a",
    "select auth.user_id() as a",
    "select id, task from todos",
    "select 1; select 2",
    "",
    "select",
]
NEON_HEADERS = [
    "Neon-Connection-String",
    "Authorization",
    "Neon-Raw-Text-Output",
    "Neon-Array-Mode",
    "Neon-Batch-Isolation-Level",
    "Neon-Batch-Read-Only",
    "Neon-Batch-Deferrable",
    "Content-Type",
    "Content-Length",
]
HEADER_VALUES = st.one_of(
    header_text,
    st.sampled_from(
        ["true", "True", "false", "", "Serializable", "ReadCommitted", "Bearer ", "Bearer a.b.c",
         "postgresql://anonymous@h/neondb", "postgres://authenticated@/neondb",
         "postgresql://authenticated@h/other", "postgresql://x@h/neondb", "-1", "0", "99999999999",
         "application/json", "text/plain", "multipart/form-data; boundary=x"]
    ),
    st.integers(-5, 200).map(str),
)  # fmt: skip
# Documented statuses for a POST: results, client errors, request too large.
POST_STATUSES = {200, 400, 413}


@pytest.fixture(scope="module")
def token(fuzz_keys: tuple[SigningKey, ...]) -> str:
    return fuzz_keys[0].sign({"sub": "fuzz-user", "exp": int(time.time()) + 3600})


def post(app: Flask, body: bytes, headers: dict[str, str]) -> Answer:
    answer = call(app, environ("POST", "/sql", body=body, headers=headers))
    assert_clean(answer, POST_STATUSES)
    if currently_in_test_context():
        event(f"status {answer.status}")
    document = json.loads(answer.body)
    if answer.status == 200:
        assert "rows" in document or "results" in document
    else:
        assert isinstance(document["message"], str) and "code" in document
    return answer


def base_headers(token: str) -> dict[str, str]:
    return {
        "Neon-Connection-String": CONNECTION,
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
    }


statements = st.fixed_dictionaries(
    {"query": st.one_of(st.sampled_from(QUERIES), st.text(max_size=30), json_values)},
    optional={
        "params": st.one_of(st.lists(json_values, max_size=4), json_values),
        "arrayMode": json_values,
    },
)
bodies = st.one_of(
    statements,
    st.fixed_dictionaries({"queries": st.one_of(st.lists(statements, max_size=3), json_values)}),
    json_values,
)


@settings(max_examples=200, deadline=None)
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=100).map(str.encode)))
def test_any_bytes_as_body(proxy_app: Flask, token: str, body: bytes) -> None:
    post(proxy_app, body, base_headers(token))


@settings(max_examples=250, deadline=None)
@given(body=bodies)
def test_any_json_as_body(proxy_app: Flask, token: str, body: Any) -> None:
    # json.dumps writes NaN and Infinity bare, as lenient clients do.
    post(proxy_app, json.dumps(body).encode(), base_headers(token))


@settings(max_examples=250, deadline=None)
@given(
    overrides=st.dictionaries(st.sampled_from(NEON_HEADERS), HEADER_VALUES, max_size=4),
    batch=st.booleans(),
)
def test_any_header_values(
    proxy_app: Flask, token: str, overrides: dict[str, str], batch: bool
) -> None:
    statement = {"query": "select $1::text as a", "params": ["x"]}
    body = {"queries": [statement, statement]} if batch else statement
    post(proxy_app, json.dumps(body).encode(), {**base_headers(token), **overrides})


@settings(max_examples=100, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"]),
    path=st.one_of(
        st.sampled_from(["/sql", "/sql/", "/", "/SQL", "//sql"]), header_text.map("/{}".format)
    ),
)
def test_other_methods_and_paths(proxy_app: Flask, method: str, path: str) -> None:
    answer = call(proxy_app, environ(method, path))
    assert_clean(answer, {200, 400, 404, 405})  # 200: the CORS preflight (OPTIONS /sql)


@settings(max_examples=150, deadline=None)
@given(claims=token_claims)
def test_signed_tokens_with_any_claims_reach_the_session_or_are_400(
    proxy_app: Flask, fuzz_keys: tuple[SigningKey, ...], claims: dict[str, Any]
) -> None:
    """Validation and the session hand-off agree: what the validator accepts, jsonb holds."""
    key = fuzz_keys[0]
    token = signed(key, {"alg": key.alg, "kid": key.kid}, claims)
    body = b'{"query": "select auth.session() as s, auth.user_id() as u"}'
    answer = post(proxy_app, body, base_headers(token))
    if answer.status == 200:
        (row,) = json.loads(answer.body)["rows"]
        assert row["s"].keys() == claims.keys()
        assert row["u"] == claims.get("sub")


def raw_token(key: SigningKey, payload: str, header: str | None = None) -> str:
    head = header if header is not None else b64json({"alg": key.alg, "kid": key.kid})
    signing_input = f"{head}.{b64(payload.encode())}"
    return f"{signing_input}.{b64(key.signature(signing_input.encode()))}"


# Each of these was a 500 before the fix in proxy/jwt.py (found by the fuzz tests above).
REFUSED_PAYLOADS = [
    '{"sub":"a","exp":NaN}',
    '{"sub":"a","nbf":Infinity}',
    '{"sub":"a","exp":1e400}',
    '{"sub":"a","name":"\\ud800"}',
    '{"sub":"a","name":"\\u0000"}',
    '{"sub":["a"]}',
]


@pytest.mark.parametrize("payload", REFUSED_PAYLOADS)
def test_signed_claims_postgres_cannot_hold_are_not_a_jwt(
    proxy_app: Flask, fuzz_keys: tuple[SigningKey, ...], payload: str
) -> None:
    body = b'{"query": "select auth.session() as s"}'
    headers = base_headers(raw_token(fuzz_keys[0], payload))
    answer = post(proxy_app, body, headers)
    assert answer.status == 400
    assert json.loads(answer.body)["message"] == NOT_A_JWT


@pytest.mark.parametrize("segment", ["header", "payload"])
def test_deeply_nested_json_in_a_token_is_not_a_jwt(
    proxy_app: Flask, fuzz_keys: tuple[SigningKey, ...], segment: str
) -> None:
    """An unsigned 7 KiB token of brackets used to overflow the JSON parser's stack."""
    nested = b64(b"[" * 5000)
    token = f"{nested}.e30.AAAA" if segment == "header" else f"e30.{nested}.AAAA"
    answer = post(proxy_app, b'{"query": "select 1"}', base_headers(token))
    assert answer.status == 400
    assert json.loads(answer.body)["message"] == NOT_A_JWT


def test_claims_jsonb_can_hold_reach_the_session(
    proxy_app: Flask, fuzz_keys: tuple[SigningKey, ...]
) -> None:
    """The other side of the line: big integers, paired surrogates, deep but finite nesting."""
    payload = '{"sub":"a","n":123456789012345678901234567890,"e":"\\ud83d\\ude00","d":' + (
        "[" * 200 + "]" * 200 + "}"
    )
    body = b'{"query": "select auth.session() as s"}'
    answer = post(proxy_app, body, base_headers(raw_token(fuzz_keys[0], payload)))
    assert answer.status == 200, answer.body
    session = json.loads(answer.body)["rows"][0]["s"]
    assert session["n"] == 123456789012345678901234567890 and session["e"] == "😀"
