"""Resource indicators (RFC 8707): only clients allowed the database get database tokens."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from issuer.db import get_engine
from issuer.oauth import clients
from tests.issuer.oauth_flows import (
    REDIRECT_URI,
    authorize_params,
    basic,
    csrf_token,
    get_code,
    make_user,
    pkce_pair,
    redeem,
    refresh,
    register,
)
from tests.support.jose import verify_with_jwks

DB = "urn:neon:database"
OTHER = "https://reports.example/api"


def claims(alice_browser: FlaskClient, token: str) -> dict:
    return verify_with_jwks(token, alice_browser.get("/.well-known/jwks.json").data).claims


def tokens_for(alice_browser: FlaskClient, client, authorize: dict, token: dict | None = None):
    """Code flow with extra /authorize and /token parameters; returns the /token response."""
    code, verifier = get_code(alice_browser, client, **authorize)
    return redeem(alice_browser, client, code, verifier, **(token or {}))


def error_redirect(alice_browser: FlaskClient, client, **extra: str) -> dict[str, str]:
    _, challenge = pkce_pair()
    params = authorize_params(client, challenge, **extra)
    response = alice_browser.get("/authorize", query_string=params)
    assert response.status_code == 302, response.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    assert query["state"] == params["state"]
    return query


def test_the_database_audience_goes_only_to_access_tokens_of_allowed_clients(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    app, _ = register(oauth_app, public=True, first_party=True, audiences=(DB,))
    response = tokens_for(alice_browser, app, {"resource": DB})
    assert response.status_code == 200, response.text
    assert claims(alice_browser, response.json["access_token"])["aud"] == DB
    # The ID token is for the client, never for the database.
    assert claims(alice_browser, response.json["id_token"])["aud"] == app.client_id
    # Refreshed tokens keep the grant's one resource.
    again = refresh(alice_browser, app, response.json["refresh_token"])
    assert claims(alice_browser, again.json["access_token"])["aud"] == DB


def test_without_a_resource_a_token_is_for_the_issuer_and_userinfo_only(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    app, _ = register(oauth_app, public=True, first_party=True, audiences=(DB,))
    plain = tokens_for(alice_browser, app, {})
    token = plain.json["access_token"]
    assert claims(alice_browser, token)["aud"] == oauth_app.config["ISSUER"].userinfo_audience
    assert (
        alice_browser.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    database = tokens_for(alice_browser, app, {"resource": DB}).json["access_token"]
    refused = alice_browser.get("/userinfo", headers={"Authorization": f"Bearer {database}"})
    assert refused.status_code == 401


@pytest.mark.parametrize(
    "resource", [DB, "relative/path", "urn:neon:database#fragment", "", "x" * 300]
)
def test_a_resource_the_client_may_not_have_is_invalid_target(
    oauth_app: Flask, alice_browser: FlaskClient, resource: str
) -> None:
    """A client registered without the database (the default) cannot ask for it."""
    app, _ = register(oauth_app, public=True, first_party=True)
    assert error_redirect(alice_browser, app, resource=resource)["error"] == "invalid_target"


def test_several_resources_need_one_named_at_the_token_endpoint(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    app, _ = register(oauth_app, public=True, first_party=True, audiences=(DB, OTHER))
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge)
    query = [*params.items(), ("resource", DB), ("resource", OTHER)]
    location = alice_browser.get("/authorize", query_string=query).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    base = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": app.client_id,
    }
    unnamed = alice_browser.post("/token", data=base)
    assert unnamed.status_code == 400 and unnamed.json["error"] == "invalid_target"

    # A fresh code for the same grant: one token per resource, on request.
    for wanted in (OTHER, DB):
        verifier, challenge = pkce_pair()
        params = authorize_params(app, challenge)
        query = [*params.items(), ("resource", DB), ("resource", OTHER)]
        location = alice_browser.get("/authorize", query_string=query).headers["Location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        named = alice_browser.post(
            "/token",
            data={**base, "code": code, "code_verifier": verifier, "resource": wanted},
        )
        assert named.status_code == 200, named.text
        assert claims(alice_browser, named.json["access_token"])["aud"] == wanted
        refresh_token = named.json["refresh_token"]
    two = alice_browser.post(
        "/token",
        data=MultiDict(
            [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", app.client_id),
                ("resource", DB),
                ("resource", OTHER),
            ]
        ),
    )
    assert two.status_code == 400 and two.json["error"] == "invalid_target"
    # The refused request did not cost the client its refresh token.
    ok = alice_browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app.client_id,
            "resource": OTHER,
        },
    )
    assert ok.status_code == 200, ok.text
    assert claims(alice_browser, ok.json["access_token"])["aud"] == OTHER


def test_a_resource_not_granted_at_authorize_is_refused_at_token(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    app, _ = register(oauth_app, public=True, first_party=True, audiences=(DB,))
    response = tokens_for(alice_browser, app, {}, {"resource": DB})
    assert response.status_code == 400 and response.json["error"] == "invalid_target"


def test_refreshing_for_another_resource_keeps_the_refresh_token(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    app, _ = register(oauth_app, public=True, first_party=True, audiences=(DB, OTHER))
    granted = tokens_for(alice_browser, app, {"resource": DB})
    refused = alice_browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": granted.json["refresh_token"],
            "client_id": app.client_id,
            "resource": OTHER,
        },
    )
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"
    assert refresh(alice_browser, app, granted.json["refresh_token"]).status_code == 200


def test_an_audience_taken_from_a_client_ends_at_its_next_refresh(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    app, _ = register(oauth_app, public=True, first_party=True, audiences=(DB,))
    granted = tokens_for(alice_browser, app, {"resource": DB})
    with oauth_app.app_context():
        clients.set_audiences(get_engine(), app.client_id, ())
    oauth_app.extensions["oauth"].clients = clients.ClientCache(ttl=0)
    refused = refresh(alice_browser, app, granted.json["refresh_token"])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"


def test_consent_says_when_a_client_asks_for_the_database(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    """A third-party client: the user sees what allowing it means."""
    app, _ = register(oauth_app, public=True, audiences=(DB,))
    _, challenge = pkce_pair()
    plain = alice_browser.get("/authorize", query_string=authorize_params(app, challenge))
    assert plain.status_code == 200
    assert "asks to sign you in" in plain.text
    assert "database" not in plain.text
    asks = alice_browser.get(
        "/authorize", query_string=authorize_params(app, challenge, resource=DB)
    )
    assert "Read and change your data in the database" in asks.text
    allowed = alice_browser.post(
        asks.request.url,
        data={"csrf_token": csrf_token(asks.text), "allow": "Allow"},
    )
    assert allowed.status_code == 302
    assert "code=" in allowed.headers["Location"]


def test_client_credentials_gets_an_allowed_audience_and_never_a_users_identity(
    oauth_app: Flask,
) -> None:
    """A client registered under a user's id still acts only as itself."""
    user = make_user(oauth_app, email="victim@example.com")
    service, secret = register(
        oauth_app,
        name="worker",
        grant_types=("client_credentials",),
        redirect_uris=(),
        client_id=user.id,
        audiences=(DB,),
    )
    http = oauth_app.test_client()
    response = http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(user.id, secret)
    )
    assert response.status_code == 200, response.text
    token = claims(http, response.json["access_token"])
    assert token["aud"] == DB
    assert token["sub"] == f"{user.id}@clients" != user.id
    other = http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": OTHER},
        headers=basic(service.client_id, secret),
    )
    assert other.status_code == 400 and other.json["error"] == "invalid_target"


def test_client_credentials_without_an_allowed_audience_is_for_the_issuer(
    oauth_app: Flask,
) -> None:
    service, secret = register(
        oauth_app, name="worker", grant_types=("client_credentials",), redirect_uris=()
    )
    http = oauth_app.test_client()
    response = http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(service.client_id, secret),
    )
    assert claims(http, response.json["access_token"])["aud"] == "http://localhost:8001/userinfo"
    asked = http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": DB},
        headers=basic(service.client_id, secret),
    )
    assert asked.status_code == 400 and asked.json["error"] == "invalid_target"


def test_registration_refuses_an_audience_that_is_not_an_absolute_uri(oauth_app: Flask) -> None:
    with pytest.raises(clients.ClientError, match="absolute URI"):
        register(oauth_app, audiences=("database",))


@pytest.mark.parametrize("audience", ["http://localhost:8001", "http://localhost:8001/userinfo"])
def test_the_database_audience_cannot_be_the_issuers_own(make_issuer_app, audience: str) -> None:
    """Release 0.1 put ISSUER_URL in every token: a database told to expect it must
    not keep opening for sign-in tokens."""
    with pytest.raises(ValueError, match="must name the database"):
        make_issuer_app(database_audience=audience)


def test_a_refresh_that_cannot_get_a_token_keeps_the_refresh_token(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    """Several resources granted and none named, or an audience the client lost: the
    refusal comes before the rotation, so the client keeps a working token. Without
    a reuse window, which would hide a rotation (a spent token presented again within
    it gets the successor it was never given)."""
    config = oauth_app.config["ISSUER"]
    oauth_app.config["ISSUER"] = dataclasses.replace(config, refresh_reuse_interval=0)
    app, _ = register(oauth_app, public=True, first_party=True, audiences=(DB, OTHER))
    verifier, challenge = pkce_pair()
    query = [*authorize_params(app, challenge).items(), ("resource", DB), ("resource", OTHER)]
    location = alice_browser.get("/authorize", query_string=query).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    granted = alice_browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": app.client_id,
            "resource": DB,
        },
    ).json
    unnamed = refresh(alice_browser, app, granted["refresh_token"])
    assert unnamed.status_code == 400 and unnamed.json["error"] == "invalid_target"
    with oauth_app.app_context():
        clients.set_audiences(get_engine(), app.client_id, (OTHER,))
    oauth_app.extensions["oauth"].clients = clients.ClientCache(ttl=0)
    lost = alice_browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": granted["refresh_token"],
            "client_id": app.client_id,
            "resource": DB,
        },
    )
    assert lost.status_code == 400 and lost.json["error"] == "invalid_target"
    kept = alice_browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": granted["refresh_token"],
            "client_id": app.client_id,
            "resource": OTHER,
        },
    )
    assert kept.status_code == 200, kept.text


def test_database_tokens_name_the_authenticated_role_and_no_other_token_does(
    oauth_app: Flask, alice_browser: FlaskClient
) -> None:
    """Neon's Data API switches to the Postgres role a token's `role` names: the issuer
    sets it on database tokens only."""
    app, _ = register(oauth_app, public=True, first_party=True, audiences=(DB, OTHER))
    database = tokens_for(alice_browser, app, {"resource": DB}).json
    assert claims(alice_browser, database["access_token"])["role"] == "authenticated"
    assert "role" not in claims(alice_browser, database["id_token"])
    other = tokens_for(alice_browser, app, {"resource": OTHER}).json
    assert "role" not in claims(alice_browser, other["access_token"])
    signin = tokens_for(alice_browser, app, {}).json
    assert "role" not in claims(alice_browser, signin["access_token"])
