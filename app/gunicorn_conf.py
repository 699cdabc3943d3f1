"""Production server settings: `gunicorn -c python:app.gunicorn_conf`.

The same shape as the issuer's (gthread, one worker per core, four threads):
a page waits on the issuer or the SQL endpoint most of its time, and threads
let those waits overlap without a worker per request.
"""

from __future__ import annotations

import os

wsgi_app = "app:create_app()"
bind = os.environ.get("APP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("APP_WORKERS", os.cpu_count() or 2))
worker_class = "gthread"
threads = int(os.environ.get("APP_THREADS", 4))
keepalive = 5
preload_app = False
# One control socket path per OS user by default; the stack's three servers
# would take it over from each other, and nothing here uses it.
control_socket_disable = True
