"""ES256 signing and access tokens, verified by an independent JOSE library (joserfc)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidKeyIdError

from issuer.keys import KeyRing
from issuer.tokens import (
    RESERVED_CLAIMS,
    ReservedClaimError,
    mint_access_token,
    raw_signature,
    sign_jwt,
)

TTL, LEEWAY, MIN_PUBLISHED = 900, 30, 3900


def segments(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in token.split(".")]


def mint(ring: KeyRing, **overrides) -> str:
    args = {
        "issuer": "https://issuer.example",
        "subject": "user-1",
        "audience": "neon",
        "ttl": TTL,
        "scope": "openid todos",
        "client_id": "todo-app",
        "extra_claims": {"team": "member"},
    }
    return mint_access_token(ring, **(args | overrides))


def test_access_token_verifies_against_the_published_jwks(ring: KeyRing, verify, clock) -> None:
    token = verify(mint(ring), ring.jwks().body)
    assert token.header == {"alg": "ES256", "kid": ring.signing_key().kid, "typ": "at+jwt"}
    now = int(clock())
    assert token.claims == {
        "iss": "https://issuer.example",
        "sub": "user-1",
        "aud": "neon",
        "exp": now + TTL,
        "iat": now,
        "nbf": now,
        "jti": token.claims["jti"],
        "scope": "openid todos",
        "client_id": "todo-app",
        "team": "member",
    }


def test_signature_is_raw_64_byte_r_s(ring: KeyRing) -> None:
    assert len(segments(mint(ring))[2]) == 64


@pytest.mark.parametrize(
    ("r", "s"),
    [(1, 1), (2**255, 2**255 - 1), (2**256 - 1, 1), (0x80, 0x7F), (2**248 - 1, 2**256 - 2**200)],
)
def test_raw_signature_matches_decode_dss_signature_at_the_edges(r: int, s: int) -> None:
    """Short integers are left-padded, 33-byte ones (sign byte) trimmed."""
    assert raw_signature(encode_dss_signature(r, s)) == r.to_bytes(32, "big") + s.to_bytes(
        32, "big"
    )


def test_raw_signature_matches_decode_dss_signature_on_real_signatures(ring: KeyRing) -> None:
    key = ring.signing_key().private_key
    for n in range(500):
        der = key.sign(str(n).encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        assert raw_signature(der) == r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_jti_is_unique(ring: KeyRing) -> None:
    jtis = {json.loads(segments(mint(ring))[1])["jti"] for _ in range(200)}
    assert len(jtis) == 200


def test_optional_claims_are_omitted_when_unset(ring: KeyRing) -> None:
    token = mint(ring, audience=None, scope=None, client_id=None, extra_claims=None)
    claims = json.loads(segments(token)[1])
    assert set(claims) == {"iss", "sub", "exp", "iat", "nbf", "jti"}


@pytest.mark.parametrize("name", sorted(RESERVED_CLAIMS))
def test_custom_claims_cannot_override_registered_ones(ring: KeyRing, name: str) -> None:
    with pytest.raises(ReservedClaimError, match=name):
        mint(ring, extra_claims={"team": "member", name: "attacker"})


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), float("-inf")])
def test_a_ttl_that_is_not_a_positive_finite_number_is_refused(ring: KeyRing, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        mint(ring, ttl=ttl)


def test_sign_jwt_uses_the_given_typ(ring: KeyRing, verify) -> None:
    token = verify(sign_jwt(ring, {"sub": "x", "nonce": "é"}), ring.jwks().body)
    assert token.header["typ"] == "JWT"
    assert token.claims["nonce"] == "é"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_json_numbers_are_refused_not_emitted(ring: KeyRing, value: float) -> None:
    with pytest.raises(ValueError):
        sign_jwt(ring, {"sub": "x", "weight": value})


def test_new_tokens_carry_the_new_active_kid_after_rotation(ring: KeyRing, clock) -> None:
    clock.advance(MIN_PUBLISHED)
    _, after = ring.rotate(min_published=MIN_PUBLISHED)
    assert json.loads(segments(mint(ring))[0])["kid"] == after.active.kid


def test_token_of_a_retired_key_verifies_until_pruned(ring: KeyRing, verify, clock) -> None:
    old_token = mint(ring)
    ring.rotate(min_published=MIN_PUBLISHED, force=True)
    verify(old_token, ring.jwks().body)
    clock.advance(TTL + LEEWAY)
    ring.prune(max_token_lifetime=TTL, leeway=LEEWAY)
    with pytest.raises(InvalidKeyIdError):
        verify(old_token, ring.jwks().body)


def test_token_of_a_revoked_key_no_longer_verifies(ring: KeyRing, verify) -> None:
    token = mint(ring)
    ring.revoke(ring.signing_key().kid)
    with pytest.raises(InvalidKeyIdError):
        verify(token, ring.jwks().body)


@pytest.mark.parametrize("part", [0, 1, 2])
def test_tampering_with_any_part_breaks_verification(ring: KeyRing, verify, part: int) -> None:
    pieces = mint(ring).split(".")
    raw = bytearray(segments(".".join(pieces))[part])
    if part == 1:
        raw = bytearray(raw.replace(b'"user-1"', b'"user-2"'))
    elif part == 0:
        raw = bytearray(raw.replace(b'"at+jwt"', b'"JWT"'))
    else:
        raw[10] ^= 1
    pieces[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(BadSignatureError):
        verify(".".join(pieces), ring.jwks().body)


def test_another_keys_signature_is_rejected(ring: KeyRing, tmp_path, verify) -> None:
    """A token from some other ring, claiming our kid, must not verify."""
    other = KeyRing(tmp_path / "other")
    other.init()
    header, payload, signature = sign_jwt(other, {"sub": "attacker"}).split(".")
    ours = ring.signing_key().header_segment("JWT").decode()
    with pytest.raises(BadSignatureError):
        verify(f"{ours}.{payload}.{signature}", ring.jwks().body)
    assert header != ours


def test_expiry_is_enforced_by_a_verifier(ring: KeyRing, verify, clock) -> None:
    claims = verify(mint(ring, ttl=60), ring.jwks().body).claims
    jwt.JWTClaimsRegistry(now=int(clock()) + 59, leeway=0).validate(claims)
    with pytest.raises(ExpiredTokenError):
        jwt.JWTClaimsRegistry(now=int(clock()) + 60, leeway=0).validate(claims)
