"""Calling a WSGI app in process with an environ built by hand, as a server would.

werkzeug's test client validates header values (no newlines, no non-latin-1
text); a real server passes the app whatever latin-1 it received, so the fuzz
tests build the environ themselves and see exactly what a server's app sees.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.test import run_wsgi_app

# Markers of an exception rendered into a response body.
TRACEBACK_MARKERS = (b"Traceback (most recent call last)", b'File "/')


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Headers
    body: bytes


def environ(
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The WSGI environ of one request; `headers` may override Content-Length."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return env


def call(app: Any, env: dict[str, Any]) -> Answer:
    """Run the app to completion (closing its response, as servers do); exceptions escape."""
    body, status, headers = run_wsgi_app(app, env, buffered=True)
    return Answer(int(status.split(" ", 1)[0]), Headers(headers), b"".join(body))


def assert_clean(answer: Answer, allowed: set[int]) -> None:
    """A documented status, and no stack trace in the body."""
    assert answer.status in allowed, (answer.status, answer.body[:300])
    assert not any(marker in answer.body for marker in TRACEBACK_MARKERS), answer.body[:300]
