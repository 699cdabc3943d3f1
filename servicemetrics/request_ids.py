"""Request ids: every request carries one, the caller's `X-Request-Id` when it is a
short plain token (a reverse proxy's), else a new one. It is answered in the same
header and put in the service's log lines, so that one request can be followed
from the reverse proxy's log to the service's."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, has_app_context, request

HEADER = "X-Request-Id"
# Letters, digits and a few separators: nothing a log line could be forged with.
_PLAIN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def init_app(app: Flask) -> None:
    app.before_request(_assign)
    app.after_request(_answer)


def current() -> str | None:
    """This request's id (None outside a request). Kept on `g`, which belongs to the
    app context: endpoints served in front of Flask push only that."""
    return g.get("request_id") if has_app_context() else None


def chosen(given: str | None) -> str:
    """The id of a request whose `X-Request-Id` header is `given` (None: absent)."""
    return given if given is not None and _PLAIN.fullmatch(given) else uuid.uuid4().hex


def _assign() -> None:
    g.request_id = chosen(request.headers.get(HEADER))


def _answer(response: Response) -> Response:
    if "request_id" in g:
        response.headers[HEADER] = g.request_id
    return response
