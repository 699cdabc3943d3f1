"""A real HTTP server on a loopback port for a WSGI app, in a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

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
