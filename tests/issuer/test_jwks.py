"""`/.well-known/jwks.json` through the Flask app: content, caching headers, 304s."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from issuer import create_app
from issuer.keys import KeyRing

URL = "/.well-known/jwks.json"


def test_publishes_next_active_and_retired_keys_with_public_members_only(
    keys_app: Flask, ring: KeyRing
) -> None:
    retired, after = ring.rotate(min_published=3900, force=True)
    response = keys_app.test_client().get(URL)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    keys = response.get_json()["keys"]
    assert [k["kid"] for k in keys] == [after.active.kid, after.next.kid, retired.kid]
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert b'"d"' not in response.data


def test_never_publishes_private_material_in_any_state(keys_app: Flask, ring: KeyRing) -> None:
    retired, _ = ring.rotate(min_published=3900, force=True)
    ring.revoke(retired.kid)
    body = keys_app.test_client().get(URL).data
    for key in json.loads(body)["keys"]:
        assert "d" not in key
    assert retired.kid.encode() not in body


def test_cache_headers(keys_app: Flask, ring: KeyRing) -> None:
    response = keys_app.test_client().get(URL)
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["ETag"] == ring.jwks().etag
    assert response.headers["ETag"].startswith('"')


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', 'W/"other" , W/{etag}', "*"],
)
def test_conditional_get_answers_304(keys_app: Flask, ring: KeyRing, if_none_match: str) -> None:
    etag = ring.jwks().etag
    response = keys_app.test_client().get(
        URL, headers={"If-None-Match": if_none_match.format(etag=etag)}
    )
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "public, max-age=300"


@pytest.mark.parametrize("if_none_match", ['"stale"', 'W/"stale"', "", "garbage, ,,"])
def test_stale_or_malformed_etag_gets_the_body(keys_app: Flask, if_none_match: str) -> None:
    response = keys_app.test_client().get(URL, headers={"If-None-Match": if_none_match})
    assert response.status_code == 200
    assert response.get_json()["keys"]


def test_etag_changes_with_the_ring_and_old_etag_gets_the_new_body(
    keys_app: Flask, ring: KeyRing
) -> None:
    client = keys_app.test_client()
    old = client.get(URL).headers["ETag"]
    ring.revoke(ring.manifest().next.kid)
    response = client.get(URL, headers={"If-None-Match": old})
    assert response.status_code == 200
    assert response.headers["ETag"] != old


def test_head_has_headers_and_no_body(keys_app: Flask, ring: KeyRing) -> None:
    response = keys_app.test_client().head(URL)
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["ETag"] == ring.jwks().etag
    assert int(response.headers["Content-Length"]) == len(ring.jwks().body)


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_are_refused(keys_app: Flask, method: str) -> None:
    assert getattr(keys_app.test_client(), method)(URL).status_code == 405


def test_max_age_follows_the_config(keys_app: Flask) -> None:
    keys_app.config["ISSUER"].jwks_max_age = 60
    assert keys_app.test_client().get(URL).headers["Cache-Control"] == "public, max-age=60"


def test_missing_ring_is_a_503_without_details(issuer_config, tmp_path) -> None:
    app = create_app(issuer_config)
    response = app.test_client().get(URL)
    assert response.status_code == 503
    assert response.get_json() == {"error": "temporarily_unavailable"}
    assert str(tmp_path).encode() not in response.data
