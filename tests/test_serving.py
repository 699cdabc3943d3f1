"""`serving`: what a request's environ holds under granian, the services' server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from serving import WithoutProcessEnvironment
from tests.support.ports import free_port
from tests.support.servers import wait_answering

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


@pytest.fixture
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_answering(base, server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_request_holds_nothing_of_the_process_environment(echoed: str) -> None:
    environ = requests.get(echoed, timeout=5).json()
    assert "PLANTED_SECRET" not in environ
    assert "HTTP_X_PLANTED" not in environ  # no header the client did not send
    assert "CONTENT_TYPE" not in environ
    assert not {"PATH", "HOME"} & environ.keys()
    assert environ["REQUEST_METHOD"] == "GET"


def test_a_header_with_a_variables_value_reaches_the_app(echoed: str) -> None:
    """Nothing is stripped by value: a client's header that happens to equal a
    variable of the process environment arrives as sent."""
    sent = {"X-Planted": "planted-by-the-environment", "X-Secret": "a master key"}
    environ = requests.get(echoed, headers=sent, timeout=5).json()
    assert environ["HTTP_X_PLANTED"] == "planted-by-the-environment"
    assert environ["HTTP_X_SECRET"] == "a master key"


def _seen(process: dict[str, str], environ: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env)
        return []

    WithoutProcessEnvironment(app, process)(environ, lambda *_: None)
    return seen


def test_a_copied_process_environment_is_still_stripped() -> None:
    """Should granian copy the process environment in after all, its first variable
    that no request sets gives it away and every one of them is removed."""
    process = {"HTTP_X_PLANTED": "planted", "SECRET": "s", "PATH": "/bin"}
    copied = {**process, "REQUEST_METHOD": "GET", "HTTP_HOST": "h"}
    assert _seen(process, copied) == {"REQUEST_METHOD": "GET", "HTTP_HOST": "h"}


def test_an_environment_of_header_names_only_is_always_stripped() -> None:
    """With no variable that only the process environment could hold, nothing tells
    a copy from a request: every request is stripped."""
    process = {"HTTP_X_PLANTED": "planted", "CONTENT_TYPE": "text/planted"}
    request = {"REQUEST_METHOD": "GET", "HTTP_X_PLANTED": "planted"}
    assert _seen(process, request) == {"REQUEST_METHOD": "GET"}


def test_a_clean_request_is_passed_as_it_is() -> None:
    request = {"REQUEST_METHOD": "GET", "HTTP_X_PLANTED": "planted"}
    assert _seen({"HTTP_X_PLANTED": "planted", "SECRET": "s"}, request) == request
