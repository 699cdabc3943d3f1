"""`neon_http.NeonHTTP` against the real proxy."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from neon_http import EndpointUnreachable, NeonDbError, NeonHTTP, derive_endpoint
from tests.proxy.support import Proxy, SigningKey, claims_for

CONNECTION = "postgresql://authenticated@ep-test-123.localhost/neondb"


@pytest.fixture
def client(proxy: Proxy, ec_key: SigningKey) -> NeonHTTP:
    token = ec_key.sign(claims_for(f"client-{uuid.uuid4()}"))
    return NeonHTTP(CONNECTION, auth_token=token, endpoint=proxy.url + "/sql", timeout=10)


def test_query_returns_typed_rows(client: NeonHTTP) -> None:
    result = client.query("select $1::int4 + 1 as n, auth.user_id() as u", [41])
    assert result.rows[0]["n"] == 42
    assert result.rows[0]["u"].startswith("client-")
    assert (result.command, result.row_count, result.row_as_array) == ("SELECT", 1, False)
    assert result.fields[0]["dataTypeID"] == 23
    assert client.query("select 1 as a, 2 as b", array_mode=True).rows == [[1, 2]]
    assert client.query("select 1 as a", raw_text=True).rows == [{"a": "1"}]


def test_transaction_runs_all_or_nothing(client: NeonHTTP) -> None:
    results = client.transaction(
        [("insert into todos (task) values ($1)", ["from client"]), "select task from todos"],
        isolation="Serializable",
    )
    assert [r.command for r in results] == ["INSERT", "SELECT"]
    assert results[1].rows == [{"task": "from client"}]
    with pytest.raises(NeonDbError) as caught:
        client.transaction(["insert into todos (task) values ('lost')", "select 1/0"])
    assert caught.value.code == "22012"
    assert [r["task"] for r in client.query("select task from todos").rows] == ["from client"]
    with pytest.raises(NeonDbError) as caught:
        client.transaction(["insert into todos (task) values ('ro')"], read_only=True)
    assert caught.value.code == "25006"
    with pytest.raises(ValueError):
        client.transaction(["select 1"], isolation="Chaos")  # type: ignore[arg-type]


def test_errors_are_typed(client: NeonHTTP, proxy: Proxy) -> None:
    with pytest.raises(NeonDbError) as caught:
        client.query("select 1 frm todos")
    error = caught.value
    assert (error.status, error.code, error.position) == (400, "42601", 14)
    assert error.message == 'syntax error at or near "todos"'
    anonymous = NeonHTTP(CONNECTION, auth_token="not-a-jwt", endpoint=proxy.url + "/sql")
    with pytest.raises(NeonDbError) as caught:
        anonymous.query("select 1")
    assert (caught.value.status, caught.value.code) == (400, "")
    assert "JWT" in caught.value.message


def test_auth_token_may_be_a_callable(proxy: Proxy, ec_key: SigningKey) -> None:
    calls = []

    def token() -> str:
        calls.append(1)
        return ec_key.sign(claims_for("callable"))

    client = NeonHTTP(CONNECTION, auth_token=token, endpoint=proxy.url + "/sql")
    assert client.query("select auth.user_id() as u").rows == [{"u": "callable"}]
    assert calls == [1]


def test_unreachable_endpoint_is_a_distinct_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = NeonHTTP(
        CONNECTION, auth_token="t", endpoint=f"http://127.0.0.1:{port}/sql", timeout=5
    )
    with pytest.raises(EndpointUnreachable):
        client.query("select 1")


def test_endpoint_derivation_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    neon = "postgresql://authenticated@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb"
    assert derive_endpoint(neon, with_token=True) == "https://apiauth.us-east-2.aws.neon.tech/sql"
    assert derive_endpoint(neon, with_token=False) == "https://api.us-east-2.aws.neon.tech/sql"
    monkeypatch.delenv("NEON_HTTP_ENDPOINT", raising=False)
    assert NeonHTTP(neon, auth_token="t").endpoint == "https://apiauth.us-east-2.aws.neon.tech/sql"
    monkeypatch.setenv("NEON_HTTP_ENDPOINT", "http://127.0.0.1:4444/sql")
    assert NeonHTTP(neon, auth_token="t").endpoint == "http://127.0.0.1:4444/sql"
    assert NeonHTTP(neon, auth_token="t", endpoint="http://x/sql").endpoint == "http://x/sql"
    with pytest.raises(ValueError):
        derive_endpoint("postgresql:///neondb", with_token=True)


class _Recorder(BaseHTTPRequestHandler):
    """One scripted answer per server; records what each request carried."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        self.server.answer(self)  # type: ignore[attr-defined]

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def _answering(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen, server.answer = [], answer  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _redirect_to(location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(307)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def _hang_up(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def _bad_gateway(handler: BaseHTTPRequestHandler) -> None:
    body = b"<html>502 Bad Gateway</html>"
    handler.send_response(502)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _url(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/sql"


def test_a_redirect_is_an_error_and_the_token_goes_nowhere_else() -> None:
    with (
        _answering(_redirect_to("")) as elsewhere,
        _answering(_redirect_to(_url(elsewhere))) as endpoint,
    ):
        client = NeonHTTP(CONNECTION, auth_token="the-users-jwt", endpoint=_url(endpoint))
        with pytest.raises(NeonDbError) as caught:
            client.query("select 1")
    assert caught.value.status == 307
    assert [seen["Authorization"] for seen in endpoint.seen] == ["Bearer the-users-jwt"]
    assert elsewhere.seen == []


def test_a_statement_is_never_sent_twice() -> None:
    """The endpoint hung up after reading it: it may have run, so no retry."""
    with _answering(_hang_up) as endpoint:
        client = NeonHTTP(CONNECTION, auth_token="t", endpoint=_url(endpoint), timeout=5)
        with pytest.raises(EndpointUnreachable):
            client.query("insert into todos (task) values ('once')")
    assert len(endpoint.seen) == 1


def test_a_body_that_is_not_json_is_an_error_carrying_its_start() -> None:
    with _answering(_bad_gateway) as endpoint:
        client = NeonHTTP(CONNECTION, auth_token="t", endpoint=_url(endpoint))
        with pytest.raises(NeonDbError) as caught:
            client.query("select 1")
    assert (caught.value.status, caught.value.message) == (502, "<html>502 Bad Gateway</html>")


def test_each_round_trip_is_timed(proxy: Proxy, ec_key: SigningKey) -> None:
    times: list[float] = []
    client = NeonHTTP(
        CONNECTION,
        auth_token=ec_key.sign(claims_for("timed")),
        endpoint=proxy.url + "/sql",
        on_round_trip=times.append,
    )
    client.query("select 1")
    client.transaction(["select 1", "select 2"])
    assert len(times) == 2 and all(0 < t < 10 for t in times)


@pytest.mark.parametrize(
    ("token", "connection_string"),
    [
        ("jwt\r\nX-Injected: 1", CONNECTION),
        ("jwt\r\n X-Folded: 1", CONNECTION),
        ("jwt-caf\u00e9", CONNECTION),
        ("jwt", CONNECTION + "\r\nX-Injected: 1"),
    ],
)
def test_header_values_that_would_break_the_header_are_refused_unrepeated(
    token: str, connection_string: str
) -> None:
    """Nothing is sent, and the error (which the app logs) does not repeat the
    value: a token or a connection string's password is a secret."""
    with _answering(_bad_gateway) as endpoint:
        client = NeonHTTP(connection_string, auth_token=token, endpoint=_url(endpoint))
        with pytest.raises(ValueError) as caught:
            client.query("select 1")
    assert "X-" not in str(caught.value) and "jwt" not in str(caught.value)
    assert endpoint.seen == []
