"""Production server settings: `gunicorn -c python:issuer.gunicorn_conf`.

Chosen by measurement (bench/issuer_http.py, 2 cores, 16 keep-alive
connections, POST /token and GET /.well-known/jwks.json):

    sync, 2 workers          token ~1.4k req/s  jwks ~2.7k req/s (no keep-alive)
    sync, 4 workers          token ~1.3k req/s  jwks ~2.1k req/s
    gthread, 2 workers x 4   token ~1.7k req/s  jwks ~5.5k req/s  <- chosen
    gthread, 2 workers x 16  token ~1.6k req/s  jwks ~4.2k req/s

One process per core keeps both cores busy; a few threads per process give
keep-alive and overlap socket I/O with the CPU-bound handlers (an ES256
signature, a SHA-256) without the GIL contention of many threads.
"""

from __future__ import annotations

import os

wsgi_app = "issuer:create_app()"
bind = os.environ.get("ISSUER_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("ISSUER_WORKERS", os.cpu_count() or 2))
worker_class = "gthread"
threads = int(os.environ.get("ISSUER_THREADS", 4))
keepalive = 5
# Every worker builds its own app (database engine, key ring) after the fork.
preload_app = False


def post_worker_init(worker) -> None:
    """Audit lines (token issuance, reuse, revocation, logout) go to stderr,
    which the process manager collects; without a handler they would be lost."""
    from issuer.audit import log_to_stderr

    log_to_stderr()
