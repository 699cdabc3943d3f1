"""A real HTTP server on a loopback port for a WSGI app, in a thread; and waiting for
a server started as a process to answer."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from werkzeug.serving import BaseWSGIServer, make_server


class LiveServer:
    """A threaded WSGI server whose app can be swapped (or set after the port is known)."""

    def __init__(self, name: str = "127.0.0.1") -> None:
        """Listen on 127.0.0.1; `name` is the host its URL gives (`localhost` for the
        stack's services, as `make run` names them: WebAuthn refuses IP addresses)."""
        self.app: Callable[..., Any] | None = None
        self.httpd: BaseWSGIServer = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.url = f"http://{name}:{self.httpd.server_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down\n"]
        return self.app(environ, start_response)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_answering(
    url: str, process: subprocess.Popen[bytes], *, within: float = 30.0, status: int | None = None
) -> None:
    """Until GET `url` answers (with `status`, when given); fails the test if `process`
    (the server) exits first, with what it printed when its output is piped."""
    deadline = time.monotonic() + within
    while True:
        try:
            if status in (None, requests.get(url, timeout=1).status_code):
                return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or still busy
            pass
        if process.poll() is not None:
            stream = process.stdout or process.stderr
            printed = stream.read().decode(errors="replace")[-2000:] if stream else ""
            pytest.fail(f"{process.args} exited with {process.returncode}: {printed}")
        if time.monotonic() > deadline:
            pytest.fail(f"{process.args} did not answer {url} within {within:.0f} s")
        time.sleep(0.1)


def stop_server(process: subprocess.Popen[bytes], *, within: float = 30.0) -> None:
    """SIGTERM, as a process manager stops a server; one that outlives `within` seconds
    is killed, never left behind the test, and fails it."""
    process.terminate()
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
