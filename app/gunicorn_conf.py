"""`gunicorn -c python:app.gunicorn_conf`: the todo app under gunicorn, for process
managers that start gunicorn themselves; `python -m app serve` (granian, see
app/server.py) is the documented way. The same settings: APP_BIND, APP_WORKERS,
APP_THREADS (gthread, one worker per core, four threads).
"""

from __future__ import annotations

import sys

from app.server import settings
from envsettings import SettingError
from servicemetrics import child_exit, on_exit, on_starting, post_worker_init

# gunicorn calls these by name: one metrics directory for all workers (and its bind).
__all__ = ["child_exit", "on_exit", "on_starting", "post_worker_init"]

try:
    # Every setting checked before a worker starts: one line and exit 1, not a
    # traceback per worker.
    _serve = settings()
except SettingError as error:
    sys.exit(f"Error: {error}")

bind = _serve.bind
workers = _serve.workers
threads = _serve.threads
wsgi_app = "app:create_app()"
worker_class = "gthread"
keepalive = 5
preload_app = False
# One control socket path per OS user by default; the stack's three servers
# would take it over from each other, and nothing here uses it.
control_socket_disable = True
# gunicorn lets loopback peers set SCRIPT_NAME and PATH_INFO by header (`Script_Name:`),
# which would route around a reverse proxy's path rules (a blocked /metrics): none.
forwarder_headers = ""
