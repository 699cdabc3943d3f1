"""The proxy's bearer-token validator under arbitrary tokens.

Three properties, each over hundreds of examples: anything that is not a token
signed by a published key is refused with `AuthError` (never another exception);
a signed token with arbitrary header and claims is accepted exactly when Neon's
rules say so; and no edit of a valid token's text survives. The last found that
base64url's unused trailing bits gave each token sixteen accepted spellings.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import AuthError
from proxy.jwks import JwksCache
from proxy.jwt import LEEWAY, TokenValidator
from proxy.rules import AuthRule
from tests.fuzz.strategies import NOW, json_values, token_claims
from tests.fuzz.tokens import signed
from tests.proxy.support import SigningKey, b64, b64json

ROLE = "authenticated"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def validator(fuzz_jwks: str) -> TokenValidator:
    return TokenValidator([AuthRule("fuzz", fuzz_jwks, None, (ROLE,))], JwksCache())


def check(validator: TokenValidator, token: str) -> dict[str, Any] | None:
    """The claims, or None when refused; any other exception fails the test."""
    try:
        return validator.validate(token, ROLE)
    except AuthError:
        return None


segments = st.one_of(
    st.text(alphabet=B64URL, max_size=120),
    st.binary(max_size=90).map(b64),
    json_values.map(b64json),
    st.text(max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(segments, min_size=1, max_size=5).map(".".join),
    )
)
def test_unsigned_garbage_is_refused(validator: TokenValidator, token: str) -> None:
    assert check(validator, token) is None


KEYS = {0: ("ES256", "fuzz-ec"), 1: ("RS256", "fuzz-rsa")}


def _header(key_index: int) -> st.SearchStrategy[dict[str, Any]]:
    """Half the time the right alg and kid for the signing key (or the claims would
    hardly matter), else wrong ones or any JSON; optional extras either way."""
    alg, kid = KEYS[key_index]
    extras = {"typ": json_values, "crit": json_values, "jku": json_values, "jwk": json_values}
    return st.one_of(
        st.fixed_dictionaries({"alg": st.just(alg), "kid": st.just(kid)}, optional=extras),
        st.fixed_dictionaries(
            {
                "alg": st.one_of(st.sampled_from(["ES256", "RS256", "HS256", "none"]), json_values),
                "kid": st.one_of(st.sampled_from(["fuzz-ec", "fuzz-rsa", "other"]), json_values),
            },
            optional=extras,
        ),
    )


def _seconds(value: Any) -> int | None:
    """serde's u64 (Neon's `numeric_date_opt`): a non-negative integer below 2**64."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        return None
    return value


def _strict_json(value: Any) -> bool:
    """What strict JSON parsers and jsonb can hold: finite numbers, UTF-8 text without NUL."""
    if isinstance(value, str):
        return "\0" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_strict_json(v) for v in value)
    if isinstance(value, dict):
        return all(_strict_json(k) and _strict_json(v) for k, v in value.items())
    return True


def neon_accepts(key: SigningKey, header: dict[str, Any], claims: dict[str, Any]) -> bool:
    """Neon's rules (shared/DESIGN.md), written independently of proxy/jwt.py."""
    if header.get("alg") != key.alg or header.get("kid") != key.kid or "crit" in header:
        return False
    if not _strict_json(claims):
        return False
    # serde's Option<Cow<str>>: a string, or null (read as absent).
    for name in ("iss", "sub", "jti", "sid"):
        if claims.get(name) is not None and not isinstance(claims[name], str):
            return False
    aud = claims.get("aud", [])
    if not (
        isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        return False
    now = time.time()
    for name, ok in (("exp", lambda t: now < t + LEEWAY), ("nbf", lambda t: t < now + LEEWAY)):
        if claims.get(name) is not None:  # Option<u64>: null is absent
            seconds = _seconds(claims[name])
            if seconds is None or not ok(seconds):
                return False
    return True


@settings(max_examples=500, deadline=None)
@given(
    signer=st.integers(0, 1).flatmap(lambda i: st.tuples(st.just(i), _header(i))),
    claims=token_claims,
)
def test_signed_tokens_are_accepted_exactly_by_neons_rules(
    validator: TokenValidator, fuzz_keys: tuple[SigningKey, ...], signer, claims
) -> None:
    key_index, header = signer
    key = fuzz_keys[key_index]
    accepted = check(validator, signed(key, header, claims))
    assert (accepted is not None) == neon_accepts(key, header, claims), (header, claims)
    if accepted is not None:
        assert accepted.keys() == claims.keys()


@settings(max_examples=300, deadline=None)
@given(
    key_index=st.integers(0, 1),
    position=st.floats(0, 1, exclude_max=True),
    edit=st.one_of(
        st.sampled_from(B64URL + ".=+/ ").map(lambda c: ("replace", c)),
        st.text(min_size=1, max_size=3).map(lambda t: ("insert", t)),
        st.just(("delete", "")),
    ),
)
def test_no_edit_of_a_valid_token_is_accepted(
    validator: TokenValidator, fuzz_keys: tuple[SigningKey, ...], key_index: int, position, edit
) -> None:
    key = fuzz_keys[key_index]
    token = signed(key, {"alg": key.alg, "kid": key.kid}, {"sub": "fuzz", "exp": NOW + 3600})
    assert check(validator, token) is not None
    i = int(position * len(token))
    kind, text = edit
    if kind == "replace":
        edited = token[:i] + text + token[i + 1 :]
    elif kind == "insert":
        edited = token[:i] + text + token[i:]
    else:
        edited = token[:i] + token[i + 1 :]
    if edited != token:
        assert check(validator, edited) is None, (i, edit)


def test_non_canonical_base64_of_the_signature_is_refused(
    validator: TokenValidator, fuzz_keys: tuple[SigningKey, ...]
) -> None:
    """64 signature bytes take 86 characters: the last one carries 4 unused bits."""
    key = fuzz_keys[0]
    token = signed(key, {"alg": key.alg, "kid": key.kid}, {"sub": "fuzz"})
    last = B64URL.index(token[-1])
    assert last & 0b1111 == 0
    assert check(validator, token) is not None
    assert check(validator, token[:-1] + B64URL[last | 0b0001]) is None
