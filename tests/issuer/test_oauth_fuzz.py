"""Random parameters at every OAuth endpoint: always an answer below 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.issuer.oauth_flows import REDIRECT_URI, log_in, make_user, register

KEYS = [
    "grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret",
    "refresh_token", "scope", "token", "token_type_hint", "response_type", "state", "nonce",
    "code_challenge", "code_challenge_method", "prompt", "id_token_hint",
    "post_logout_redirect_uri", "max_age",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        ["code", "authorization_code", "refresh_token", "client_credentials", "S256", "plain",
         "openid", "none", "login consent", REDIRECT_URI, "a.b.c", "", " ", "%", "\\", '"']
    ),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=80),
)  # fmt: skip
PARAMS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8)
ENDPOINTS = ["/authorize", "/token", "/revoke", "/end-session", "/userinfo"]


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    from issuer import create_app
    from issuer.config import Config
    from issuer.keys import KeyRing

    tmp = tmp_path_factory.mktemp("fuzz")
    config = Config(
        keys_dir=tmp / "keys",
        database_url=f"sqlite:///{tmp / 'issuer.sqlite3'}",
        data_dir=tmp / "data",
        secret_key="fuzz",
    )
    KeyRing(config.keys_dir).init()
    app = create_app(config)
    register(app, public=True, first_party=True, client_id="spa")
    register(app, client_id="web")
    make_user(app)
    client = app.test_client()
    log_in(client, "alice@example.com")
    return client


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    method=st.sampled_from(["GET", "POST"]),
    params=PARAMS,
    authorization=st.one_of(st.none(), st.text(max_size=30), st.just("Basic d2ViOng=")),
)
def test_no_input_makes_an_endpoint_fail(http, endpoint, method, params, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    try:
        if method == "GET":
            response = http.get(endpoint, query_string=params, headers=headers)
        else:
            response = http.post(endpoint, data=params, headers=headers)
    except ValueError:
        return  # the test client itself refuses the header (e.g. a newline in it)
    assert response.status_code < 500, (endpoint, method, params, response.text[:300])
