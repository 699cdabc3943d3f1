"""`serving`: what a request's environ holds under granian, the services' server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from serving import WithoutProcessEnvironment
from tests.support.ports import free_port
from tests.support.servers import stop_server, wait_answering

# A WSGI app that answers with its environ's string items, served by `serve_wsgi`
# as every service is (granian, forked workers).
_ECHO_SERVER = textwrap.dedent(
    """
    import json, sys
    import serving

    def echo(environ, start_response):
        body = json.dumps({k: v for k, v in environ.items() if isinstance(v, str)}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    serving.serve_wsgi(lambda: echo, "127.0.0.1", int(sys.argv[1]), workers=1, threads=2)
    """
)


@pytest.fixture(scope="module")
def echoed() -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PLANTED_SECRET": "a master key",
        "HTTP_X_PLANTED": "planted-by-the-environment",
        "CONTENT_TYPE": "text/planted",
    }
    server = subprocess.Popen(
        [sys.executable, "-c", _ECHO_SERVER, str(port)],
        env=env,
        stdout=subprocess.PIPE,  # said when it fails to start; it prints a line or two
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_answering(base, server)
        yield base
    finally:
        stop_server(server)


def test_a_request_holds_nothing_of_the_process_environment(echoed: str) -> None:
    environ = requests.get(echoed, timeout=5).json()
    assert "PLANTED_SECRET" not in environ
    assert "HTTP_X_PLANTED" not in environ  # no header the client did not send
    assert "CONTENT_TYPE" not in environ
    assert not {"PATH", "HOME"} & environ.keys()
    assert environ["REQUEST_METHOD"] == "GET"


def test_a_header_named_and_valued_as_a_variable_reaches_the_app(echoed: str) -> None:
    """Nothing is stripped: a client's header with the very name and value of a
    variable of the process environment arrives as sent (the strip would remove it)."""
    environ = requests.post(
        echoed,
        data=b"{}",
        headers={"X-Planted": "planted-by-the-environment", "Content-Type": "text/planted"},
        timeout=5,
    ).json()
    assert environ["HTTP_X_PLANTED"] == "planted-by-the-environment"
    assert environ["CONTENT_TYPE"] == "text/planted"


def _passing(process: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What an app behind one WithoutProcessEnvironment sees of each environ passed."""
    seen: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.clear()
        seen.update(env)
        return []

    stripping = WithoutProcessEnvironment(app, process)

    def passed(environ: dict[str, Any]) -> dict[str, Any]:
        stripping(environ, lambda *_: None)
        return dict(seen)

    return passed


def test_a_copied_process_environment_is_still_stripped(caplog: pytest.LogCaptureFixture) -> None:
    """Should granian copy the process environment in after all, its first variable
    that neither granian nor a client sets gives it away, every one of them is
    removed, and the log says so once."""
    process = {"SERVER_SOFTWARE": "x", "HTTP_X_PLANTED": "planted", "SECRET": "s", "PATH": "/"}
    request = {"REQUEST_METHOD": "GET", "SERVER_SOFTWARE": "Granian", "HTTP_HOST": "h"}
    passed = _passing(process)
    for _ in range(2):
        assert passed({**process, **request}) == request
    noticed = [r.getMessage() for r in caplog.records if r.name == "serving"]
    assert noticed == [
        "granian copied the process environment into a request (SECRET): "
        "stripping it from every request"
    ]


def test_an_environment_of_header_names_only_is_always_stripped() -> None:
    """With no variable that only the process environment could hold, nothing tells
    a copy from a request: every request is stripped."""
    process = {"HTTP_X_PLANTED": "planted", "CONTENT_TYPE": "text/planted"}
    request = {"REQUEST_METHOD": "GET", "HTTP_X_PLANTED": "planted"}
    assert _passing(process)(request) == {"REQUEST_METHOD": "GET"}


def test_a_clean_request_is_passed_as_it_is() -> None:
    request = {"REQUEST_METHOD": "GET", "HTTP_X_PLANTED": "planted"}
    assert _passing({"HTTP_X_PLANTED": "planted", "SECRET": "s"})(request) == request
