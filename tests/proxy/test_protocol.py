"""Neon's /sql protocol as served by the proxy, against real PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.proxy.support import Proxy

TYPES_QUERY = """
select true as b, 1::int2 as i2, 2::int4 as i4, 3::int8 as i8, 1.5::float4 as f4,
       2.25::float8 as f8, 'NaN'::float8 as nan, 12.50::numeric(5,2) as num,
       'txt' as t, '{"a": [1, null]}'::json as j, '{"b": 2}'::jsonb as jb,
       '2024-01-02 03:04:05+00'::timestamptz as ts, '2024-01-02'::date as d,
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as u, '\\x0102'::bytea as by,
       array[1, null, 3]::int4[] as ia, array['x', 'y,"z"', null]::text[] as ta,
       array[[true, false], [false, true]] as ba, array[1, 2]::int8[] as i8a,
       null::int4 as nothing
"""


def test_single_query_response_shape_and_types(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    body = proxy.sql(user_token("shape"), TYPES_QUERY)
    assert body["command"] == "SELECT"
    assert body["rowCount"] == 1
    assert body["rowAsArray"] is False
    assert body["rows"] == [
        {
            "b": True,
            "i2": 1,
            "i4": 2,
            "i8": "3",
            "f4": 1.5,
            "f8": 2.25,
            "nan": "NaN",
            "num": "12.50",
            "t": "txt",
            "j": {"a": [1, None]},
            "jb": {"b": 2},
            "ts": "2024-01-02 03:04:05+00",
            "d": "2024-01-02",
            "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "by": "\\x0102",
            "ia": [1, None, 3],
            "ta": ["x", 'y,"z"', None],
            "ba": [[True, False], [False, True]],
            "i8a": ["1", "2"],
            "nothing": None,
        }
    ]
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["i4"] == {
        "name": "i4",
        "dataTypeID": 23,
        "tableID": 0,
        "columnID": 0,
        "dataTypeSize": 4,
        "dataTypeModifier": -1,
        "format": "text",
    }
    assert fields["num"]["dataTypeID"] == 1700
    assert fields["num"]["dataTypeModifier"] == (5 << 16 | 2) + 4
    assert fields["jb"]["dataTypeID"] == 3802


def test_raw_text_output_makes_every_value_a_string(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    row = proxy.sql(user_token("raw"), TYPES_QUERY, headers={"Neon-Raw-Text-Output": "true"})[
        "rows"
    ][0]
    assert row["b"] == "t"
    assert row["i4"] == "2"
    assert row["jb"] == '{"b": 2}'
    assert row["ia"] == "{1,NULL,3}"
    assert row["nothing"] is None


def test_only_the_exact_value_true_switches_a_flag(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    token = user_token("flags")
    for value in ("True", "1", "yes", "true "):
        body = proxy.sql(
            token,
            "select 1 as one",
            headers={"Neon-Raw-Text-Output": value, "Neon-Array-Mode": value},
        )
        assert body["rows"] == [{"one": 1}]
    body = proxy.sql(token, "select 1 as one, 'a' as two", headers={"Neon-Array-Mode": "true"})
    assert body["rows"] == [[1, "a"]]
    assert body["rowAsArray"] is True


def test_table_fields_carry_table_and_column_ids(
    proxy: Proxy, user_token: Callable[[str], str], owner
) -> None:
    body = proxy.sql(user_token("fields"), "select id, task from todos limit 0")
    table_oid = owner.execute("select 'public.todos'::regclass::oid").fetchone()[0]
    assert [(f["name"], f["tableID"], f["columnID"]) for f in body["fields"]] == [
        ("id", table_oid, 1),
        ("task", table_oid, 3),
    ]
    assert body["rows"] == [] and body["rowCount"] == 0


def test_params_are_converted_like_neon(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    body = proxy.sql(
        user_token("params"),
        "select $1::text is null as n, $2::text as s, $3::text as b, $4::text as num,"
        " $5::jsonb as obj, $6::text[] as arr, $7::int[] as nested, $8::text as quote",
        [None, "it's", True, 1.5, {"k": ["v"]}, ["a", None, 'q"\\b'], [[1, 2], [3, 4]], "$1"],
    )
    assert body["rows"] == [
        {
            "n": True,
            "s": "it's",
            "b": "true",
            "num": "1.5",
            "obj": {"k": ["v"]},
            "arr": ["a", None, 'q"\\b'],
            "nested": [[1, 2], [3, 4]],
            "quote": "$1",
        }
    ]


def test_command_tags_and_row_counts(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    token = user_token(f"tags-{uuid.uuid4()}")
    inserted = proxy.sql(token, "insert into todos (task) values ('a'), ('b')")
    assert (inserted["command"], inserted["rowCount"], inserted["rows"]) == ("INSERT", 2, [])
    updated = proxy.sql(token, "update todos set is_complete = true")
    assert (updated["command"], updated["rowCount"]) == ("UPDATE", 2)
    deleted = proxy.sql(token, "delete from todos returning task")
    assert deleted["command"] == "DELETE" and deleted["rowCount"] == 2
    assert sorted(r["task"] for r in deleted["rows"]) == ["a", "b"]


def test_syntax_error_is_400_with_code_and_position(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    response = proxy.post({"query": "select 1 frm todos"}, user_token("syntax"))
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "42601"
    assert error["position"] == "14"
    assert error["severity"] == "ERROR"
    assert error["message"] == 'syntax error at or near "todos"'


def test_constraint_error_carries_postgres_fields(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    response = proxy.post({"query": "insert into todos (task) values ('')"}, user_token("check"))
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "23514"
    assert error["table"] == "todos"
    assert error["schema"] == "public"
    assert error["constraint"] == "todos_task_check"


def test_multi_statement_strings_are_rejected(
    proxy: Proxy, user_token: Callable[[str], str], owner
) -> None:
    marker = f"multi_{uuid.uuid4().hex[:8]}"
    token = user_token(marker)
    response = proxy.post({"query": "select 1; select 2"}, token)
    assert response.status_code == 400
    assert response.json()["code"] == "42601"
    assert "multiple commands" in response.json()["message"]
    response = proxy.post(
        {"query": f"insert into todos (task) values ('{marker}'); select 1"}, token
    )
    assert response.status_code == 400
    owner.execute("set row_security = off")
    assert owner.execute("select count(*) from todos where task = %s", [marker]).fetchone() == (0,)


def test_batch_runs_in_one_transaction(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    token = user_token(f"batch-{uuid.uuid4()}")
    response = proxy.post(
        {
            "queries": [
                {"query": "insert into todos (task) values ($1) returning task", "params": ["one"]},
                {"query": "select count(*)::int4 as n from todos"},
                {"query": "select txid_current() = txid_current() as same", "arrayMode": True},
            ]
        },
        token,
        headers={"Neon-Batch-Isolation-Level": "Serializable", "Neon-Batch-Deferrable": "true"},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["rows"] == [{"task": "one"}]
    assert results[1]["rows"] == [{"n": 1}]
    assert results[2]["rows"] == [[True]] and results[2]["rowAsArray"] is True
    assert response.headers["Neon-Batch-Isolation-Level"] == "Serializable"
    assert response.headers["Neon-Batch-Deferrable"] == "true"


def test_batch_isolation_and_read_only_are_applied(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    token = user_token("iso")
    response = proxy.post(
        {
            "queries": [
                {"query": "show transaction_isolation"},
                {"query": "show transaction_read_only"},
            ]
        },
        token,
        headers={"Neon-Batch-Isolation-Level": "RepeatableRead", "Neon-Batch-Read-Only": "true"},
    )
    results = response.json()["results"]
    assert results[0]["rows"] == [{"transaction_isolation": "repeatable read"}]
    assert results[1]["rows"] == [{"transaction_read_only": "on"}]
    response = proxy.post(
        {"queries": [{"query": "insert into todos (task) values ('ro')"}]},
        token,
        headers={"Neon-Batch-Read-Only": "true"},
    )
    assert response.status_code == 400 and response.json()["code"] == "25006"
    response = proxy.post(
        {"queries": [{"query": "select 1"}]}, token, headers={"Neon-Batch-Isolation-Level": "Chaos"}
    )
    assert response.status_code == 400 and response.json()["message"] == "invalid isolation level"


def test_failing_second_statement_rolls_back_the_first(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    token = user_token(f"rollback-{uuid.uuid4()}")
    response = proxy.post(
        {
            "queries": [
                {"query": "insert into todos (task) values ('kept?')"},
                {"query": "select 1/0"},
                {"query": "insert into todos (task) values ('never')"},
            ]
        },
        token,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "22012"
    assert proxy.sql(token, "select count(*)::int4 as n from todos")["rows"] == [{"n": 0}]


def test_request_over_10_mib_is_413(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    limit = 10 * 1024 * 1024
    query = "select '" + "x" * limit + "'"
    response = proxy.post({"query": query}, user_token("big"))
    assert response.status_code == 413
    assert response.json()["message"] == f"request is too large (max is {limit} bytes)"
    assert response.json()["code"] == ""
    just_under = {"query": "select length($1)::int4 as n", "params": ["y" * (limit - 100)]}
    assert proxy.post(just_under, user_token("big")).json()["rows"] == [{"n": limit - 100}]


def test_response_over_10_mib_is_507(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    response = proxy.post(
        {"query": "select repeat('x', 10 * 1024 * 1024) as x"}, user_token("huge")
    )
    assert response.status_code == 507
    assert response.json()["message"].startswith("response is too large")
    many_rows = {"query": "select repeat('x', 1024) from generate_series(1, 11 * 1024)"}
    assert proxy.post(many_rows, user_token("huge")).status_code == 507
    six_mib = {"query": "select repeat('x', 6 * 1024 * 1024) as x"}
    assert proxy.post({"queries": [six_mib, six_mib]}, user_token("huge")).status_code == 507
    assert proxy.post({"queries": [six_mib]}, user_token("huge")).status_code == 200
    ok = proxy.post({"query": "select repeat('x', 1024 * 1024) as x"}, user_token("huge"))
    assert ok.status_code == 200 and len(ok.json()["rows"][0]["x"]) == 1024 * 1024


@pytest.mark.parametrize("count", [1, 9, 10, 11, 20, 250])
def test_rows_read_in_chunks_come_back_whole_and_in_order(
    proxy: Proxy, user_token: Callable[[str], str], count: int
) -> None:
    # libpq hands rows over ten at a time; the command's status comes with whichever
    # chunk is current at its end (the last one, or an empty one after it).
    body = {
        "queries": [
            {"query": "select g as n from generate_series(1, $1::int4) g", "params": [count]},
            {"query": "select 'next' as s"},
        ]
    }
    first, second = proxy.post(body, user_token("chunks")).json()["results"]
    assert first["rows"] == [{"n": n} for n in range(1, count + 1)]
    assert (first["command"], first["rowCount"]) == ("SELECT", count)
    assert [f["name"] for f in first["fields"]] == ["n"]
    assert second["rows"] == [{"s": "next"}]


def test_an_error_after_some_chunks_is_the_answer(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    response = proxy.post(
        {"query": "select 1 / (150 - g) from generate_series(1, 200) g"}, user_token("chunks")
    )
    assert response.status_code == 400
    assert response.json()["code"] == "22012"  # division_by_zero, and no rows


def test_a_result_switched_out_of_utf8_is_a_400(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    token = user_token("latin1")
    switch = "select set_config('client_encoding', 'LATIN1', false)"
    in_a_value = {"query": f"{switch} || chr(233) as x"}
    # A column name spelt with a Unicode escape arrives in LATIN1 too.
    in_a_name = {"queries": [{"query": switch}, {"query": 'select 1 as U&"\\00E9"'}]}
    for body in (in_a_value, in_a_name):
        response = proxy.post(body, token)
        assert response.status_code == 400, response.text
        assert response.json()["message"] == (
            "the result is not valid UTF8: client_encoding must stay UTF8"
        )
    for _ in range(4):  # every pooled connection reads UTF8 again
        assert proxy.sql(token, "select chr(233) as x")["rows"] == [{"x": "é"}]


def test_malformed_bodies_are_400(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    token = user_token("body")
    for raw in (
        b"not json",
        b"[]",
        b'{"query": 1}',
        b'{"queries": [{"q": 1}]}',
        b'{"query": "select 1", "params": "x"}',
        b'{"query": "select 1", "arrayMode": "yes"}',
        b"\xff\xfe",
        b'{"query": "select $1", "params": [1e400]}',
        b'{"query": "select $1", "params": ["\\ud800"]}',
        b'{"query": "select \'\\udfff\'"}',
        b'{"query": "select $1", "params": ["a\\u0000b"]}',
        b'{"query": "select $1", "params": [["a\\u0000b"]]}',
        b'{"query": "select 1", "params": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
    ):
        response = proxy.post(None, token, raw=raw)
        assert response.status_code == 400, raw
        assert response.json()["message"].startswith("could not parse the HTTP request body"), raw
        assert response.json()["code"] == ""


def test_bad_connection_strings_are_400(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    token = user_token("conn")
    cases = {
        "mysql://authenticated@h/neondb": "incorrect scheme",
        "postgresql://h/neondb": "missing username",
        "postgresql://authenticated@h": "missing database name",
        "postgresql://authenticated@/neondb": "missing hostname",
        "postgresql://authenticated@h/neondb%00x": "invalid database name",
        "postgresql://authenticated%00x@h/neondb": "invalid username",
        "postgresql://authenticated@[::1/neondb": "invalid connection string: Invalid IPv6 URL",
    }
    for value, message in cases.items():
        response = proxy.post(
            {"query": "select 1"}, token, headers={"Neon-Connection-String": value}
        )
        assert (response.status_code, response.json()["message"]) == (400, message), value


def test_unknown_database_is_a_postgres_error(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    response = proxy.post(
        {"query": "select 1"},
        user_token("db"),
        headers={"Neon-Connection-String": "postgresql://authenticated@h/nosuchdb"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "3D000"


def test_cors_preflight_and_headers(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    """Exactly Neon's answer (proxy/src/serverless/mod.rs), so that a page which works
    against the proxy works against Neon: no Content-Type, no Neon-Batch-Deferrable."""
    response = proxy.http.options(
        proxy.url + "/sql",
        headers={
            "Origin": "http://127.0.0.1:8000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,neon-connection-string",
        },
        timeout=10,
    )
    assert response.status_code == 200 and response.content == b""
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Headers"] == (
        "Authorization, Neon-Connection-String, Neon-Raw-Text-Output, Neon-Array-Mode, "
        "Neon-Pool-Opt-In, Neon-Batch-Read-Only, Neon-Batch-Isolation-Level"
    )
    assert response.headers["Access-Control-Max-Age"] == "86400"
    assert response.headers["Allow"] == "OPTIONS, POST"
    assert "Access-Control-Allow-Methods" not in response.headers
    assert (
        proxy.post({"query": "select 1"}, user_token("cors")).headers["Access-Control-Allow-Origin"]
        == "*"
    )
    assert proxy.post({"query": "select 1"}, None).headers["Access-Control-Allow-Origin"] == "*"


def test_unknown_paths_and_methods_are_json_errors(proxy: Proxy) -> None:
    response = proxy.http.get(proxy.url + "/sql", timeout=10)
    assert response.status_code == 405 and "message" in response.json()
    response = proxy.http.get(proxy.url + "/nope", timeout=10)
    assert response.status_code == 404 and "message" in response.json()


def test_statements_http_cannot_carry_are_400_and_the_pool_recovers(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    token = user_token("copy")
    for body in (
        {"query": "copy (select 1) to stdout"},
        {"queries": [{"query": "select 1"}, {"query": "copy (select 1) to stdout"}]},
    ):
        response = proxy.post(body, token)
        assert response.status_code == 400
        assert response.json()["message"].startswith("unsupported statement")
    response = proxy.post({"query": "select pg_terminate_backend(pg_backend_pid())"}, token)
    assert response.status_code == 503
    assert response.json()["message"].startswith("the database connection was lost")
    for _ in range(proxy.config.pool_size + 1):
        assert proxy.sql(token, "select 1 as one")["rows"] == [{"one": 1}]


def test_empty_queries_have_an_empty_result(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    body = proxy.sql(user_token("empty"), "-- nothing")
    assert body == {"command": "", "rowCount": None, "rows": [], "fields": [], "rowAsArray": False}
    assert proxy.post({"queries": []}, user_token("empty")).json() == {"results": []}


def test_params_are_untyped_text_as_on_neon(proxy: Proxy, user_token: Callable[[str], str]) -> None:
    token = user_token("untyped")
    assert proxy.sql(token, "select $1 + 1 as n", ["41"])["rows"] == [{"n": 42}]
    assert proxy.sql(token, "select $1::date + 1 as d", ["2024-01-01"])["rows"] == [
        {"d": "2024-01-02"}
    ]
    response = proxy.post({"query": "select pg_typeof($1)::text", "params": ["a"]}, token)
    assert (response.status_code, response.json()["code"]) == (400, "42P18")


def test_json_values_beyond_64_bit_integers_and_deep_nesting_are_answered_exactly(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    token = user_token("wide-json")
    big = 123456789012345678901234567890
    body = proxy.sql(token, f"select '{{\"n\": {big}}}'::jsonb as j, $1::int8 as i", ["-1"])
    assert body["rows"] == [{"j": {"n": big}, "i": "-1"}]
    deep = proxy.sql(token, "select (repeat('[', 300) || repeat(']', 300))::json as j")
    value = deep["rows"][0]["j"]
    for _ in range(299):
        value = value[0]
    assert value == []
    # Deeper, or longer, than Python's own parser takes: passed through as Neon does.
    deeper = "[" * 5000 + "]" * 5000
    long_number = "9" * 5000
    for text in (deeper, long_number):
        response = proxy.post({"query": "select $1::jsonb as j", "params": [text]}, token)
        assert response.status_code == 200
        assert f'"rows":[{{"j":{text}}}]'.encode() in response.content


def test_a_batch_sent_while_its_results_fill_the_socket_completes(
    proxy: Proxy, user_token: Callable[[str], str]
) -> None:
    padding = "-" * 9000  # megabytes in both directions at once: no write/write deadlock
    queries = [{"query": f"select repeat('x', 20000) as x -- {padding}"} for _ in range(300)]
    response = proxy.post({"queries": queries}, user_token("both-ways"))
    assert response.status_code == 200, response.text[:200]
    results = response.json()["results"]
    assert len(results) == 300
    assert {r["rows"][0]["x"] for r in results} == {"x" * 20000}


def test_a_backend_killed_mid_query_is_a_503_and_the_pool_recovers(
    proxy: Proxy, user_token: Callable[[str], str], owner: psycopg.Connection
) -> None:
    token = user_token("killed")
    marker = f"kill_me_{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {}
    request = threading.Thread(
        target=lambda: result.update(
            r=proxy.post({"query": f"select pg_sleep(5) as {marker}"}, token)
        )
    )
    request.start()
    deadline = time.monotonic() + 5
    killed = False
    while not killed and time.monotonic() < deadline:
        time.sleep(0.05)
        killed = (
            owner.execute(
                "select bool_or(pg_terminate_backend(pid)) from pg_stat_activity"
                " where query like %s and pid <> pg_backend_pid()",
                [f"%{marker}%"],
            ).fetchone()[0]
            or False
        )
    request.join(10)
    assert killed
    assert result["r"].status_code == 503
    assert result["r"].json()["message"].startswith("the database connection was lost")
    for _ in range(proxy.config.pool_size + 1):
        assert proxy.sql(token, "select 1 as one")["rows"] == [{"one": 1}]


def test_other_methods_on_sql_are_405_with_allow(proxy: Proxy) -> None:
    for method in ("PUT", "DELETE", "HEAD"):
        response = proxy.http.request(method, proxy.url + "/sql", timeout=10)
        assert response.status_code == 405, method
        assert response.headers["Allow"] == "OPTIONS, POST"
        assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "host", ["ep-typo.localhost", "ep-cool-darkness-123456.us-east-2.aws.neon.tech", "example.com"]
)
def test_an_unknown_endpoint_host_is_refused_as_neon_refuses_it(
    proxy: Proxy, user_token: Callable[[str], str], host: str
) -> None:
    """A mistyped connection string fails locally as it would on Neon, before any SQL."""
    response = proxy.post(
        {"query": "select 1"},
        user_token("typo"),
        headers={"Neon-Connection-String": f"postgresql://authenticated@{host}/neondb"},
    )
    assert response.status_code == 400
    assert response.json()["message"] == (
        "failed to fetch auth rules: Control plane request failed: endpoint cannot be found"
    )
    assert response.json()["code"] == ""


def test_the_endpoint_hosts_default_to_local_ones_and_the_apps_connection_string() -> None:
    from envsettings import Env
    from proxy.config import endpoint_hosts

    assert endpoint_hosts(Env({})) == {"localhost", "127.0.0.1"}
    app = {"DATABASE_AUTHENTICATED_URL": "postgresql://authenticated@ep-x.example/neondb"}
    assert endpoint_hosts(Env(app)) == {"localhost", "127.0.0.1", "ep-x.example"}
    assert endpoint_hosts(Env({**app, "PROXY_ENDPOINT_HOSTS": " A.example, b.example "})) == {
        "a.example",
        "b.example",
    }
