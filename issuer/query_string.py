"""A query string must be UTF-8, or the request is a 400 before any view runs.

werkzeug decodes `request.args` strictly: raw non-UTF-8 bytes in the request
line (which browsers never send, but any HTTP client can) raise
UnicodeDecodeError inside whichever view first reads an argument, a 500. Checked
once here rather than in every view that reads one.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import BadRequest


def _require_utf8() -> None:
    try:
        request.query_string.decode()
    except UnicodeDecodeError:
        raise BadRequest("The query string is not valid UTF-8.") from None


def init_app(app: Flask) -> None:
    app.before_request(_require_utf8)
