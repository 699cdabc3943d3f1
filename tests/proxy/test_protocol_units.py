"""Parameter and value conversions, checked in isolation and against Postgres' own parser."""

from __future__ import annotations

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.protocol import command_and_count, param_text, parse_array


def test_params_follow_neons_rules() -> None:
    assert param_text(None) is None
    assert param_text('foo"') == 'foo"'
    assert [param_text(v) for v in (True, False, 42, 1.5)] == ["true", "false", "42", "1.5"]
    assert param_text({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert param_text([True, None, "NULL", 42, "foo", 'bar"-\\']) == (
        '{true,NULL,"NULL",42,"foo","bar\\"-\\\\"}'
    )
    assert param_text([[1, 2], [None, 3]]) == "{{1,2},{NULL,3}}"
    assert param_text([{"foo": 1}, {"bar": 2}]) == '{"{\\"foo\\":1}","{\\"bar\\":2}"}'


def test_array_literals_parse_like_neon() -> None:
    assert parse_array('{"aa\\"\\\\\\,a",cha,"bbbb"}', str) == ['aa"\\,a', "cha", "bbbb"]
    assert parse_array('{{{{"foo",NULL,"bop",bup}}}}', str) == [[[["foo", None, "bop", "bup"]]]]
    assert parse_array('{"NULL",NULL}', str) == ["NULL", None]
    assert parse_array("[1:1][-2:-1][3:5]={{{1,2,3},{4,5,6}}}", int) == [[[1, 2, 3], [4, 5, 6]]]
    assert parse_array("{}", int) == []
    assert parse_array('{""}', str) == [""]


def test_command_tags() -> None:
    assert command_and_count("INSERT 0 3") == ("INSERT", 3)
    assert command_and_count("SELECT 50") == ("SELECT", 50)
    assert command_and_count("CREATE TABLE") == ("CREATE", None)
    assert command_and_count("BEGIN") == ("BEGIN", None)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), texts), max_size=8))
def test_text_arrays_round_trip_through_postgres(pg_server, values: list[str | None]) -> None:
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        literal = conn.execute("select (%s::text[])::text", [param_text(values)]).fetchone()[0]
    assert parse_array(literal, str) == values
