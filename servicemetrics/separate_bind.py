"""`/metrics` on a bind of its own (`<SERVICE>_METRICS_BIND`), off the public port.

Each worker process serves it from a daemon thread, every worker on the same
address (SO_REUSEPORT: the kernel hands each scrape to one of them), so a scrape
sees exactly what it would on the service's port: the totals of all workers and
the scraped worker's own gauges. Only `GET /metrics` is answered.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST

from envsettings import split_bind


class _SharedPortServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class _QuietHandler(WSGIRequestHandler):
    timeout = 10  # a client that sends nothing does not keep its thread

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are counted, not logged line by line."""


def serve(bind: str, exposition: Callable[[], bytes]) -> WSGIServer:
    """Listen on `bind` (host:port, checked by the settings) now, an OSError if it
    cannot, and answer in a daemon thread."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics here\n"]
        if environ["REQUEST_METHOD"] != "GET":
            start_response("405 Method Not Allowed", [("Allow", "GET")])
            return [b""]
        body = exposition()
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
        )
        return [body]

    host, port = split_bind("metrics bind", bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("MetricsServer", (_SharedPortServer,), {"address_family": family})
    server = make_server(host, port, app, server_class, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-bind", daemon=True).start()
    return server
