"""Hypothesis strategies shared by the fuzz tests: JSON of every shape, header text."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import strategies as st

# Everything Python's json module writes, NaN and Infinity included (it emits them
# as bare words, which lenient parsers read back and strict ones refuse).
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["", "\0", "\ud800", "null", "true", "0", "-1", "1e400", "é", "🙂"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)

# What a WSGI server may hand an app as a header value: latin-1 text without CR/LF.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0xFF, exclude_characters="\r\n"),
    max_size=60,
)

NOW = int(time.time())


def _time(now: int) -> st.SearchStrategy[Any]:
    """Times well clear of the 30 s leeway edges (for as long as a test session
    lasts after import), or any JSON at all."""
    offsets = st.sampled_from([-86_400, -3_600, -600, 3_600, 86_400])
    return st.one_of(offsets.map(lambda offset: now + offset), json_values)


# JWT claims: the registered ones Neon reads, each plausible or any JSON, plus any others.
token_claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(st.text(max_size=12), json_values),
        "exp": _time(NOW),
        "nbf": _time(NOW),
        "aud": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_values),
        "iss": json_values,
    },
).flatmap(lambda registered: json_objects.map(lambda extra: {**extra, **registered}))
