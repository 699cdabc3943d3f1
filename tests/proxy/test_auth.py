"""Forged and broken tokens, as an attacker would send them: all refused, no SQL run."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from proxy.rules import AuthRule
from tests.proxy.support import (
    JwksServer,
    Proxy,
    SigningKey,
    b64,
    b64json,
    base_config,
    claims_for,
    new_ec_key,
)

NOT_A_JWT = "Provided authentication token is not a valid JWT encoding"
NO_CREDENTIALS = (
    "missing authentication credentials: required authorization bearer token in JWT format"
)
NOT_SUPPORTED = "signature algorithm not supported"
BAD_SIGNATURE = "signature error: signature verification failed"


@pytest.fixture(scope="module")
def p384_key() -> SigningKey:
    return new_ec_key("p384", ec.SECP384R1())


@pytest.fixture(scope="module")
def encryption_key() -> SigningKey:
    """Published with `use: enc`: an encryption key, never one that may sign."""
    return new_ec_key("enc-only")


@pytest.fixture(scope="module")
def weak_rsa_key() -> SigningKey:
    return SigningKey("rsa-1024", rsa.generate_private_key(65537, 1024), "RS256")


@pytest.fixture(scope="module")
def guarded_jwks(
    jwks_server: JwksServer,
    ec_key: SigningKey,
    rsa_key: SigningKey,
    p384_key: SigningKey,
    encryption_key: SigningKey,
    weak_rsa_key: SigningKey,
) -> str:
    return jwks_server.publish(
        "/guarded/jwks.json",
        ec_key,
        rsa_key,
        p384_key,
        encryption_key.jwk(use="enc"),
        weak_rsa_key,
    )


@pytest.fixture
def guarded(start_proxy: Callable[..., Proxy], neon_db: Any, guarded_jwks: str) -> Iterator[Proxy]:
    """A fresh proxy: after a refused request it must never have opened a database connection."""
    proxy = start_proxy(base_config(neon_db, guarded_jwks))
    yield proxy
    assert proxy.services.pools.targets() == []


def refused(proxy: Proxy, token: str | None, message: str, **kw: Any) -> None:
    response = proxy.post({"query": "select 1"}, token, **kw)
    assert response.status_code == 400, response.text
    assert response.json()["message"] == message
    assert response.json()["code"] == ""


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64json(header)}.{b64json(claims)}.{b64(signature)}"


def test_missing_or_non_bearer_authorization(guarded: Proxy, ec_key: SigningKey) -> None:
    token = ec_key.sign(claims_for("alice"))
    refused(guarded, None, NO_CREDENTIALS)
    for value in (f"bearer {token}", f"Basic {token}", token, f"Bearer  {token}", "Bearer"):
        refused(
            guarded,
            None,
            NO_CREDENTIALS if "Bearer " not in value else NOT_A_JWT,
            headers={"Authorization": value},
        )


def test_malformed_tokens(guarded: Proxy, ec_key: SigningKey) -> None:
    good = ec_key.sign(claims_for("alice"))
    head, body, sig = good.split(".")
    for token in (
        "",
        "abc",
        "a.b",
        f"{head}.{body}",
        f"{good}.x",
        f"{head}.{body}.{sig}=",
        f"{head}=.{body}.{sig}",
        f"{head}.{body}.{sig}!",
        f"{b64(b'[1]')}.{body}.{sig}",
        f"{b64(b'not json')}.{body}.{sig}",
        f"{head}.{b64(b'null')}.{sig}",
        f"{head}.{b64json({'sub': 'x', 'exp': 'soon'})}.{sig}",
        f"{head}.{b64json({'sub': 'x', 'aud': 5})}.{sig}",
        f"{head}.{b64json({'sub': 'x', 'exp': 10**400})}.{sig}",
        f"{b64json({'alg': ['ES256'], 'kid': 'ec-main'})}.{body}.{sig}",
        f"{b64json({'alg': {'x': 1}, 'kid': 'ec-main'})}.{body}.{sig}",
        f"{b64json({'alg': 'ES256', 'kid': 'ec-main', 'crit': ['b64']})}.{body}.{sig}",
    ):
        refused(guarded, token, NOT_A_JWT)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_casing(guarded: Proxy, ec_key: SigningKey, alg: str) -> None:
    refused(guarded, forge({"alg": alg, "kid": ec_key.kid}, claims_for("alice")), NOT_A_JWT)
    signature = ec_key.signature(b"anything")
    refused(
        guarded, forge({"alg": alg, "kid": ec_key.kid}, claims_for("alice"), signature), NOT_A_JWT
    )


@pytest.mark.parametrize("which", ["ec", "rsa"])
def test_hs256_signed_with_the_public_key(
    guarded: Proxy, ec_key: SigningKey, rsa_key: SigningKey, which: str
) -> None:
    key = ec_key if which == "ec" else rsa_key
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_json = json.dumps(key.jwk()).encode()
    for secret in (pem, jwk_json):
        signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{b64json(claims_for('alice'))}"
        mac = hmac.HMAC(secret, hashes.SHA256())
        mac.update(signing_input.encode())
        refused(guarded, f"{signing_input}.{b64(mac.finalize())}", NOT_SUPPORTED)


def test_algorithm_and_key_type_must_match(
    guarded: Proxy, ec_key: SigningKey, rsa_key: SigningKey
) -> None:
    claims = claims_for("alice")
    rsa_signed_for_ec_kid = forge(
        {"alg": "RS256", "kid": ec_key.kid}, claims, rsa_key.signature(b"x")
    )
    refused(guarded, rsa_signed_for_ec_kid, NOT_SUPPORTED)
    refused(guarded, forge({"alg": "ES256", "kid": rsa_key.kid}, claims, bytes(64)), NOT_SUPPORTED)
    for alg in ("ES384", "PS256", "RS512", "EdDSA"):
        refused(guarded, ec_key.sign(claims, alg=alg), NOT_SUPPORTED)


def test_missing_or_unknown_kid(guarded: Proxy, ec_key: SigningKey) -> None:
    refused(guarded, ec_key.sign(claims_for("alice"), kid=None), "missing key id")
    refused(guarded, ec_key.sign(claims_for("alice"), kid=42), "missing key id")
    refused(guarded, ec_key.sign(claims_for("alice"), kid="nope"), "jwk not found")


@pytest.mark.parametrize("kid", [["ec-main"], {"kid": "ec-main"}, None, True])
def test_a_kid_that_is_not_a_string_is_refused_cleanly(
    guarded: Proxy, ec_key: SigningKey, kid: object
) -> None:
    """Checked before any lookup: a list or object as `kid` would otherwise reach a
    dict lookup (a 500), and no key is ever chosen without one."""
    refused(guarded, ec_key.sign(claims_for("alice"), kid=kid), "missing key id")


def test_keys_published_for_encryption_are_ignored(
    guarded: Proxy, encryption_key: SigningKey
) -> None:
    """Signed with the very key the JWKS publishes for encryption: a perfect signature
    by a key that may not sign."""
    refused(guarded, encryption_key.sign(claims_for("alice")), "jwk not found")


def test_rsa_keys_under_2048_bits_are_ignored(guarded: Proxy, weak_rsa_key: SigningKey) -> None:
    refused(guarded, weak_rsa_key.sign(claims_for("alice")), "invalid RSA key")


def test_expiry_and_not_before_beyond_leeway(guarded: Proxy, ec_key: SigningKey) -> None:
    now = int(time.time())
    refused(
        guarded,
        ec_key.sign(claims_for("alice") | {"exp": now - 31}),
        f"JWT token has expired (exp={now - 31})",
    )
    refused(
        guarded,
        ec_key.sign(claims_for("alice") | {"nbf": now + 40}),
        f"JWT token is not yet ready to use (nbf={now + 40})",
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1.9e9},
        {"exp": 1900000000.0},
        {"exp": "1900000000"},
        {"exp": -1},
        {"exp": True},
        {"nbf": 1.5},
        {"nbf": 2**64},
        {"iss": 7},
        {"iss": ["https://issuer.example"]},
        {"jti": 123},
        {"sid": {"id": "s"}},
        {"aud": None},
        {"aud": 5},
        {"aud": ["ok", 5]},
    ],
)
def test_claims_typed_as_neon_types_them(
    guarded: Proxy, ec_key: SigningKey, claims: dict[str, Any]
) -> None:
    """Neon's proxy reads `exp`/`nbf` as u64 and `iss`/`sub`/`jti`/`sid` as strings and
    refuses anything else as an encoding error: a token that fails there fails here."""
    refused(guarded, ec_key.sign(claims_for("alice") | claims), NOT_A_JWT)


def test_a_null_string_claim_reads_as_absent(proxy: Proxy, ec_key: SigningKey) -> None:
    """serde reads `"sub": null` as no subject (Option<str>): Neon accepts the token,
    and nobody is the database's user."""
    token = ec_key.sign(claims_for("alice") | {"sub": None, "iss": None, "jti": None})
    assert proxy.sql(token, "select auth.user_id() as u")["rows"] == [{"u": None}]


def test_expiry_and_not_before_within_leeway_are_accepted(proxy: Proxy, ec_key: SigningKey) -> None:
    now = int(time.time())
    for claims in (
        claims_for("leeway-exp") | {"exp": now - 20},
        claims_for("leeway-nbf") | {"nbf": now + 20},
    ):
        body = proxy.sql(ec_key.sign(claims), "select auth.user_id() as uid")
        assert body["rows"] == [{"uid": claims["sub"]}]


def test_tampered_payload(guarded: Proxy, ec_key: SigningKey, rsa_key: SigningKey) -> None:
    for key in (ec_key, rsa_key):
        head, _, sig = key.sign(claims_for("alice")).split(".")
        refused(guarded, f"{head}.{b64json(claims_for('bob'))}.{sig}", BAD_SIGNATURE)


def test_all_zero_and_der_ecdsa_signatures(guarded: Proxy, ec_key: SigningKey) -> None:
    header = {"alg": "ES256", "typ": "JWT", "kid": ec_key.kid}
    claims = claims_for("alice")
    refused(guarded, forge(header, claims, bytes(64)), BAD_SIGNATURE)
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    der = ec_key.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    refused(guarded, f"{signing_input}.{b64(der)}", BAD_SIGNATURE)
    refused(
        guarded,
        f"{signing_input}.{b64(ec_key.signature(signing_input.encode())[:63])}",
        BAD_SIGNATURE,
    )


def test_embedded_and_remote_key_headers_are_never_trusted_or_fetched(
    guarded: Proxy, jwks_server: JwksServer, ec_key: SigningKey
) -> None:
    attacker = new_ec_key("attacker")
    attacker_url = jwks_server.publish("/attacker/jwks.json", attacker)
    claims = claims_for("alice")
    for header in ({"jku": attacker_url}, {"x5u": attacker_url}):
        refused(guarded, attacker.sign(claims, **header), "jwk not found")
    # The attacker's key, embedded in the header, under the real key id.
    for header in (
        {"jwk": attacker.jwk(kid=ec_key.kid)},
        {"jku": attacker_url},
        {"x5c": [base64.b64encode(b"not a certificate").decode()]},
    ):
        refused(guarded, attacker.sign(claims, kid=ec_key.kid, **header), BAD_SIGNATURE)
    assert jwks_server.count("/attacker/jwks.json") == 0


def test_p384_keys_are_refused(guarded: Proxy, p384_key: SigningKey) -> None:
    refused(guarded, p384_key.sign(claims_for("alice")), "unsupported EC key type P-384")
    refused(
        guarded, p384_key.sign(claims_for("alice"), alg="ES256"), "unsupported EC key type P-384"
    )


def test_oversized_token(guarded: Proxy, ec_key: SigningKey) -> None:
    token = ec_key.sign(claims_for("alice", padding="x" * 20_000))
    refused(guarded, token, "Provided authentication token is too large")


def test_role_not_in_any_rule(guarded: Proxy, ec_key: SigningKey) -> None:
    token = ec_key.sign(claims_for("alice"))
    for role in ("neondb_owner", "postgres", "nobody"):
        refused(
            guarded,
            token,
            "failed to fetch auth rules: JWKs settings for this role were not configured",
            role=role,
        )


def test_audience_is_checked_only_when_configured(
    start_proxy: Callable[..., Proxy],
    neon_db: Any,
    main_jwks: str,
    proxy: Proxy,
    ec_key: SigningKey,
) -> None:
    rule = AuthRule("aud", main_jwks, "todo-app", ("authenticated",))
    with_audience = start_proxy(base_config(neon_db, main_jwks, auth_rules=[rule]))
    for aud in ("other", ["a", "b"], None):
        claims = claims_for("alice") | ({"aud": aud} if aud else {})
        refused(with_audience, ec_key.sign(claims), "invalid JWT token audience")
    assert with_audience.services.pools.targets() == []
    for aud in ("todo-app", ["other", "todo-app"]):
        token = ec_key.sign(claims_for("aud-ok", aud=aud))
        assert with_audience.sql(token, "select auth.user_id() as u")["rows"] == [{"u": "aud-ok"}]
    token = ec_key.sign(claims_for("no-aud-rule", aud="anything"))
    assert proxy.sql(token, "select auth.user_id() as u")["rows"] == [{"u": "no-aud-rule"}]


def test_rs256_tokens_are_accepted(proxy: Proxy, rsa_key: SigningKey) -> None:
    token = rsa_key.sign(claims_for("rsa-user"))
    assert proxy.sql(token, "select auth.user_id() as u")["rows"] == [{"u": "rsa-user"}]


def test_anonymous_role_also_requires_a_valid_token(
    guarded: Proxy, proxy: Proxy, ec_key: SigningKey
) -> None:
    refused(guarded, None, NO_CREDENTIALS, role="anonymous")
    body = proxy.sql(ec_key.sign(claims_for("anon")), "select current_user as r", role="anonymous")
    assert body["rows"] == [{"r": "anonymous"}]


def test_a_validated_token_is_remembered_for_its_role_only(
    proxy: Proxy, ec_key: SigningKey, owner
) -> None:
    """The validation cache must not turn "valid for `authenticated`" into "valid":
    re-sent naming the owner role, the same token is refused as any other would be."""
    token = ec_key.sign(claims_for("cached-alice"))
    assert proxy.sql(token, "select current_user as r")["rows"] == [{"r": "authenticated"}]
    before = owner.execute(
        "select count(*) from pg_roles where rolname = 'cache_escape'"
    ).fetchone()
    for role in ("neondb_owner", "postgres"):
        refused(
            proxy,
            token,
            "failed to fetch auth rules: JWKs settings for this role were not configured",
            role=role,
        )
    response = proxy.post({"query": "create role cache_escape"}, token, role="neondb_owner")
    assert response.status_code == 400
    after = owner.execute("select count(*) from pg_roles where rolname = 'cache_escape'").fetchone()
    assert before == after == (0,)


def test_a_key_vouches_only_for_the_roles_of_its_own_rule(
    start_proxy: Callable[..., Proxy],
    neon_db: Any,
    jwks_server: JwksServer,
    ec_key: SigningKey,
) -> None:
    """Two providers (as on Neon, one JWKS per role): a key of the `authenticated`
    provider must not vouch for a token presented as `anonymous`, whose provider
    published other keys."""
    other = new_ec_key("other-provider")
    users = jwks_server.publish("/rules/users.json", ec_key)
    guests = jwks_server.publish("/rules/guests.json", other)
    rules = [
        AuthRule("users", users, None, ("authenticated",)),
        AuthRule("guests", guests, None, ("anonymous",)),
    ]
    split = start_proxy(base_config(neon_db, users, auth_rules=rules))
    token = ec_key.sign(claims_for("alice"))
    assert split.sql(token, "select current_user as r")["rows"] == [{"r": "authenticated"}]
    refused(split, token, "jwk not found", role="anonymous")
    guest = other.sign(claims_for("guest"))
    assert split.sql(guest, "select current_user as r", role="anonymous")["rows"] == [
        {"r": "anonymous"}
    ]
    refused(split, guest, "jwk not found")
