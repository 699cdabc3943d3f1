"""`gunicorn -c python:issuer.gunicorn_conf`: the issuer under gunicorn, for process
managers that start gunicorn themselves. `python -m issuer serve` (granian, see
issuer/server.py for the measurements) is the faster, documented way; this one reads
the same settings (ISSUER_BIND, ISSUER_WORKERS, ISSUER_THREADS)."""

from __future__ import annotations

import sys
from typing import Any

import servicemetrics
from envsettings import SettingError
from issuer.server import settings

try:
    # Every setting checked before a worker starts: one line and exit 1, not a
    # traceback per worker.
    _serve = settings()
except SettingError as error:
    sys.exit(f"Error: {error}")

bind = _serve.bind
workers = _serve.workers
threads = _serve.threads
worker_class = "gthread"
keepalive = 5
# Every worker builds its own app (database engine, key ring) after the fork.
preload_app = False
# One control socket path per OS user by default; the stack's servers would take it
# over from each other, and nothing here uses it.
control_socket_disable = True
# gunicorn lets loopback peers set SCRIPT_NAME and PATH_INFO by header (`Script_Name:`),
# which would route around a reverse proxy's path rules (a blocked /metrics): none.
forwarder_headers = ""
# One metrics directory for every worker (see servicemetrics).
on_starting = servicemetrics.on_starting
child_exit = servicemetrics.child_exit
on_exit = servicemetrics.on_exit
wsgi_app = "issuer:create_app()"


def post_worker_init(worker: Any) -> None:
    """What `issuer.server.served_app` does in each of granian's workers."""
    # These settings can serve another app (the benchmark's constant baseline): the
    # timer is the issuer's, and runs only where the issuer is served.
    if "keyring" in getattr(worker.wsgi, "extensions", {}):
        from issuer.server import start_serving

        start_serving(worker.wsgi)
        servicemetrics.post_worker_init(worker)
