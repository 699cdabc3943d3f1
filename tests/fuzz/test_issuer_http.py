"""The issuer's HTTP endpoints under arbitrary bytes, form fields, JSON and headers.

tests/issuer/test_oauth_fuzz.py sends well-formed forms built from the OAuth
parameter names; this file covers what it does not: raw bodies in any content
type, raw query strings (bad percent-escapes, repeated and unknown names),
any header value (Host, Cookie, Authorization, If-None-Match ...), forged and
issuer-signed tokens with arbitrary claims at /userinfo and /end-session, and
the login and sign-up forms with a valid CSRF token but arbitrary fields.
Requests go into the real app in process, on PostgreSQL and a real key ring.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from hypothesis import currently_in_test_context, event, given, reject, settings
from hypothesis import strategies as st

from issuer.tokens import sign_jwt
from tests.fuzz.conftest import ISSUER_URL
from tests.fuzz.strategies import header_text, json_objects, json_values
from tests.fuzz.wsgi import Answer, assert_clean, call, environ
from tests.issuer.oauth_flows import REDIRECT_URI, log_in, make_user, register
from tests.proxy.support import b64, b64json

EMAIL = "fuzz@example.com"
# Stands for the fuzz user's `sub` (a uuid chosen when the user is created).
USER_ID = "fuzz-user-id"
# Every status the issuer documents for a request it refuses or redirects.
STATUSES = {200, 204, 302, 303, 304, 400, 401, 403, 404, 405, 409, 413, 414, 415, 429}
PAGES = ["/login", "/signup", "/logout", "/account"]
OAUTH = ["/authorize", "/token", "/revoke", "/userinfo", "/end-session"]
PUBLIC = ["/.well-known/jwks.json", "/.well-known/openid-configuration", "/healthz"]
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        ["application/x-www-form-urlencoded", "application/json", "text/plain",
         "multipart/form-data; boundary=b", "multipart/form-data",
         "application/x-www-form-urlencoded; charset=latin-1", ""]
    ),
    header_text,
)  # fmt: skip
addresses = st.one_of(st.ip_addresses().map(str), header_text)


@dataclass(frozen=True)
class Issuer:
    app: Flask
    user_id: str
    cookie: str  # a logged-in browser's Cookie header
    csrf: str  # a CSRF token valid with that cookie


@pytest.fixture(scope="module")
def issuer(issuer_app: Flask) -> Issuer:
    register(issuer_app, public=True, first_party=True, client_id="fuzz-spa")
    register(issuer_app, client_id="fuzz-web", post_logout_redirect_uris=(REDIRECT_URI,))
    user = make_user(issuer_app, EMAIL)
    browser = issuer_app.test_client()
    log_in(browser, EMAIL)
    page = browser.get("/account").text
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert csrf, page
    cookie = browser.get_cookie("issuer_session")
    assert cookie is not None
    return Issuer(issuer_app, user.id, f"issuer_session={cookie.value}", csrf.group(1))


def request(
    issuer: Issuer,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    address: str = "127.0.0.1",
) -> Answer:
    env = environ(method, path, query=query, body=body, headers=headers)
    env["REMOTE_ADDR"] = address
    answer = call(issuer.app, env)
    assert_clean(answer, STATUSES)
    if currently_in_test_context():
        event(f"{method} {path} -> {answer.status}")
    return answer


raw_queries = st.lists(
    st.one_of(
        st.tuples(header_text, header_text).map("=".join),
        st.sampled_from(["%", "%zz", "%ff%fe", "a=%c3%28", "client_id=fuzz-spa", "&&", "=", "a"]),
    ),
    max_size=6,
).map("&".join)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    path=st.sampled_from(PAGES + OAUTH + PUBLIC),
    query=raw_queries,
    logged_in=st.booleans(),
)
def test_any_raw_query_string(
    issuer: Issuer, method: str, path: str, query: str, logged_in: bool
) -> None:
    headers = {"Cookie": issuer.cookie} if logged_in else {}
    request(issuer, method, path, query=query, headers=headers)


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.tuples(header_text, header_text), max_size=6).map(lambda p: urlencode(p).encode()),
    st.sampled_from([b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--\r\n",
                     b"--b\r\n", b"a=%ff", b"grant_type=client_credentials&grant_type=x"]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    path=st.sampled_from(PAGES + OAUTH),
    body=bodies,
    content_type=CONTENT_TYPES,
    logged_in=st.booleans(),
    with_csrf=st.booleans(),
    address=addresses,
)
def test_any_body_in_any_content_type(
    issuer: Issuer,
    path: str,
    body: bytes,
    content_type: str,
    logged_in: bool,
    with_csrf: bool,
    address: str,
) -> None:
    headers = {"Content-Type": content_type}
    if logged_in:
        headers["Cookie"] = issuer.cookie
    if with_csrf:
        headers["X-CSRFToken"] = issuer.csrf
    request(issuer, "POST", path, body=body, headers=headers, address=address)


HEADER_NAMES = [
    "Host", "Cookie", "Authorization", "If-None-Match", "Content-Type", "Content-Length",
    "X-Forwarded-For", "X-Forwarded-Proto", "Origin", "Referer", "Accept", "Transfer-Encoding",
]  # fmt: skip
HEADER_VALUES = st.one_of(
    header_text,
    st.sampled_from(
        ["issuer_session=", "issuer_session=a.b.c", "Basic", "Basic !!!", "Basic OmZ1enotd2Vi",
         "Basic /w==", "Bearer", "Bearer a.b.c", "*", 'W/"x", "y"', "-1", "99999999999",
         "chunked", "[::1]", "127.0.0.1:0", "évil.example"]
    ),
    st.binary(max_size=20).map(lambda b: "Basic " + b64(b)),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    path=st.sampled_from(PAGES + OAUTH + PUBLIC),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=4),
    form=st.dictionaries(
        st.sampled_from(["grant_type", "client_id", "token", "client_secret", "scope"]),
        st.sampled_from(["client_credentials", "fuzz-web", "fuzz-spa", "x", ""]),
        max_size=3,
    ),
)
def test_any_header_values(
    issuer: Issuer, method: str, path: str, headers: dict[str, str], form: dict[str, str]
) -> None:
    body = urlencode(form).encode()
    sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    request(issuer, method, path, body=body, headers=sent)


def _signed(issuer: Issuer, claims: dict[str, Any], typ: str) -> str:
    if claims.get("sub") == USER_ID:
        claims = {**claims, "sub": issuer.user_id}
    try:
        return sign_jwt(issuer.app.extensions["keyring"], claims, typ=typ)
    except (TypeError, ValueError):
        reject()  # claims the issuer's own JSON writer refuses: it never signs them


def _claim_sets(issuer_url: str, now: int) -> st.SearchStrategy[dict[str, Any]]:
    """A valid access token's claims with a few of them replaced by any JSON or
    dropped, plus arbitrary extra claims: deep enough to reach every check."""
    valid = {
        "iss": issuer_url,
        "sub": USER_ID,
        "aud": f"{issuer_url}/userinfo",
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": "fuzz-jti",
        "scope": "openid email",
        "client_id": "fuzz-web",
    }
    changes = st.dictionaries(
        st.sampled_from(sorted(valid)), st.one_of(st.none(), json_values), max_size=3
    )
    return st.tuples(changes, json_objects).map(
        lambda pair: {
            **pair[1],
            **{k: v for k, v in valid.items() if k not in pair[0]},
            **{k: v for k, v in pair[0].items() if v is not None},
        }
    )


claim_sets = _claim_sets(ISSUER_URL, int(time.time()))
forged_tokens = st.tuples(json_objects, json_objects, st.binary(max_size=70)).map(
    lambda parts: f"{b64json(parts[0])}.{b64json(parts[1])}.{b64(parts[2])}"
)


@settings(max_examples=200, deadline=None)
@given(
    claims=claim_sets,
    typ=st.sampled_from(["at+jwt", "JWT", "x"]),
    forged=st.one_of(st.none(), forged_tokens),
    method=st.sampled_from(["GET", "POST"]),
)
def test_tokens_with_any_claims_at_userinfo(
    issuer: Issuer, claims: dict[str, Any], typ: str, forged: str | None, method: str
) -> None:
    token = forged if forged is not None else _signed(issuer, claims, typ)
    answer = request(issuer, method, "/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert answer.status in (200, 401, 403), answer.body[:300]


@settings(max_examples=200, deadline=None)
@given(
    claims=claim_sets,
    forged=st.one_of(st.none(), forged_tokens),
    params=st.dictionaries(
        st.sampled_from(["client_id", "post_logout_redirect_uri", "state", "ui_locales"]),
        st.one_of(st.sampled_from(["fuzz-web", "fuzz-spa", REDIRECT_URI]), header_text),
        max_size=3,
    ),
    logged_in=st.booleans(),
)
def test_id_token_hints_with_any_claims_at_end_session(
    issuer: Issuer,
    claims: dict[str, Any],
    forged: str | None,
    params: dict[str, str],
    logged_in: bool,
) -> None:
    hint = forged if forged is not None else _signed(issuer, claims, "JWT")
    query = urlencode({"id_token_hint": hint, **params})
    # A copy of the cookie: a logout here must not end the session other examples use.
    headers = {"Cookie": issuer.cookie} if logged_in else {}
    request(issuer, "GET", "/end-session", query=query, headers=headers)


@settings(max_examples=120, deadline=None)
@given(
    path=st.sampled_from(["/login", "/signup"]),
    fields=st.fixed_dictionaries(
        {},
        optional={
            "email": st.one_of(st.just(EMAIL), st.emails().map(str), header_text),
            "password": st.one_of(st.just("correct horse battery staple"), st.text(max_size=80)),
            "confirm": st.text(max_size=20),
            "remember": st.text(max_size=5),
        },
    ),
    next_url=st.one_of(st.none(), header_text, st.sampled_from(["/account", "//evil", "/\\x"])),
    address=addresses,
)
def test_login_and_signup_forms_with_any_fields(
    issuer: Issuer, path: str, fields: dict[str, str], next_url: str | None, address: str
) -> None:
    # Surrogates cannot be sent in a form: a browser would have replaced them.
    body = urlencode(
        {**fields, "csrf_token": issuer.csrf}, encoding="utf-8", errors="replace"
    ).encode()
    query = (
        ""
        if next_url is None
        else urlencode({"next": next_url}, encoding="latin-1", errors="replace")
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": issuer.cookie}
    answer = request(issuer, "POST", path, query=query, body=body, headers=headers, address=address)
    assert answer.status in (200, 303, 400, 401, 409, 429), answer.body[:300]


# Found by the tests above; each was a 500.


@pytest.mark.parametrize("path", ["/login", "/signup", "/authorize", "/end-session", "/logout"])
def test_a_query_string_that_is_not_utf8_is_a_400(issuer: Issuer, path: str) -> None:
    """Raw bytes in the request line, as an HTTP client (not a browser) may send them."""
    answer = request(issuer, "GET", path, query="next=/\xe9t\xe9")
    assert answer.status == 400


@pytest.mark.parametrize("body", [b"false", b"[1]", b'"x"', b'{"email": 5, "password": ["a"]}'])
@pytest.mark.parametrize("path", ["/login", "/signup", "/end-session"])
def test_a_json_body_is_no_form_data(issuer: Issuer, path: str, body: bytes) -> None:
    """Flask-WTF reads JSON bodies as form data; our pages post forms, so JSON is refused."""
    headers = {"Content-Type": "application/json", "X-CSRFToken": issuer.csrf}
    answer = request(issuer, "POST", path, body=body, headers={**headers, "Cookie": issuer.cookie})
    assert answer.status == 400


@pytest.mark.parametrize("sub", ["\0", "a\0b", 5, ["x"], {"id": "x"}])
def test_an_access_token_whose_sub_cannot_name_a_user_is_refused(issuer: Issuer, sub: Any) -> None:
    now = int(time.time())
    claims = {
        "iss": ISSUER_URL,
        "sub": sub,
        "aud": f"{ISSUER_URL}/userinfo",
        "exp": now + 600,
        "iat": now,
        "jti": "j",
        "client_id": "fuzz-web",
        "scope": "openid",
    }
    token = sign_jwt(issuer.app.extensions["keyring"], claims, typ="at+jwt")
    answer = request(issuer, "GET", "/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 401


@pytest.mark.parametrize("scope", [False, 5, {"openid": True}, ["openid"]])
def test_an_access_token_whose_scope_is_not_a_string_is_refused(issuer: Issuer, scope: Any) -> None:
    now = int(time.time())
    claims = {
        "iss": ISSUER_URL,
        "sub": issuer.user_id,
        "aud": f"{ISSUER_URL}/userinfo",
        "exp": now + 600,
        "iat": now,
        "jti": "j",
        "client_id": "fuzz-web",
    }
    ring = issuer.app.extensions["keyring"]
    good = sign_jwt(ring, {**claims, "scope": "openid"}, typ="at+jwt")
    bad = sign_jwt(ring, {**claims, "scope": scope}, typ="at+jwt")
    assert (
        request(issuer, "GET", "/userinfo", headers={"Authorization": f"Bearer {good}"}).status
        == 200
    )
    assert (
        request(issuer, "GET", "/userinfo", headers={"Authorization": f"Bearer {bad}"}).status
        == 401
    )
