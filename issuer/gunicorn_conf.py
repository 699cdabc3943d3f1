"""`gunicorn -c python:issuer.gunicorn_conf`: the settings of `python -m issuer serve`
(see issuer/server.py, where they were chosen), for process managers that start
gunicorn themselves."""

from __future__ import annotations

import sys

from envsettings import SettingError
from issuer.server import settings

try:
    # Every setting checked before a worker starts: one line and exit 1, not a
    # traceback per worker.
    globals().update(settings())
except SettingError as error:
    sys.exit(f"Error: {error}")

wsgi_app = "issuer:create_app()"
