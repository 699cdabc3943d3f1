"""Checks every OAuth request passes before authlib sees it.

authlib echoes some parameters inside `error_description`, which must be
restricted ASCII (RFC 6749 4.1.2.1) or authlib raises ValueError (a 500).
RFC 6749 also forbids repeating any parameter. These checks turn such input,
oversized bodies and wrong content types into plain `invalid_request` errors.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import Request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_content_length, get_input_stream

#: Largest form body or query string we parse. Real requests are < 1 KiB.
MAX_PARAMS_BYTES = 8192
#: Characters allowed in parameter names and values that may be echoed in errors.
_SAFE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
#: Parameters a request may repeat: RFC 8707 resource indicators.
_REPEATABLE = frozenset({"resource"})
#: Opaque values the client picks (VSCHAR, RFC 6749 appendix A): never echoed in errors.
_OPAQUE = frozenset({"state", "nonce"})
_VSCHAR = re.compile(r"[\x20-\x7e]*")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def check_params(params: MultiDict) -> None:
    """Each parameter once (but `resource`), printable ASCII, and error-safe unless opaque."""
    for name in params:
        if not _SAFE.fullmatch(name):
            raise InvalidRequestError("Parameter names must be printable ASCII.")
        values = params.getlist(name)
        if len(values) > 1 and name not in _REPEATABLE:
            raise InvalidRequestError(f"Parameter '{name}' is repeated.")
        pattern = _VSCHAR if name in _OPAQUE else _SAFE
        if not all(pattern.fullmatch(value) for value in values):
            raise InvalidRequestError(f"Parameter '{name}' contains characters it may not.")


def read_form_post(environ: dict[str, Any]) -> MultiDict:
    """The parameters of what /token and /revoke accept: a small urlencoded POST
    body, no query. Read from the WSGI environ: these endpoints are served in front
    of Flask (`issuer.oauth.form_post`)."""
    if environ["REQUEST_METHOD"] != "POST":
        raise InvalidRequestError("This endpoint accepts POST only.", status_code=405)
    length = get_content_length(environ)
    if length is not None and length > MAX_PARAMS_BYTES:
        raise InvalidRequestError("The request body is too large.", status_code=413)
    mimetype, _ = parse_options_header(environ.get("CONTENT_TYPE", ""))
    if mimetype.lower() != FORM_CONTENT_TYPE:
        raise InvalidRequestError(f"The request body must be {FORM_CONTENT_TYPE}.")
    if environ.get("QUERY_STRING"):
        raise InvalidRequestError("Parameters belong in the request body, not the URL.")
    body = _read_body(environ)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidRequestError("The request body is not valid UTF-8.") from None
    # Percent-escapes that are not UTF-8 decode to U+FFFD, which check_params refuses.
    form = MultiDict(parse_qsl(text, keep_blank_values=True, errors="replace"))
    check_params(form)
    return form


def _read_body(environ: dict[str, Any]) -> bytes:
    """The whole body, refused past MAX_PARAMS_BYTES rather than cut there. A server
    that ends the stream itself (chunked bodies, `wsgi.input_terminated`) is read
    until its end or one byte past the limit; otherwise Content-Length bounds it."""
    if not environ.get("wsgi.input_terminated"):
        try:
            return get_input_stream(environ).read()
        except ClientDisconnected:
            raise InvalidRequestError("The request body ended before its length.") from None
    stream, chunks, size = environ["wsgi.input"], [], 0
    while size <= MAX_PARAMS_BYTES:
        chunk = stream.read(MAX_PARAMS_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_PARAMS_BYTES:
        raise InvalidRequestError("The request body is too large.", status_code=413)
    return b"".join(chunks)


def check_query(request: Request) -> None:
    if len(request.query_string) > MAX_PARAMS_BYTES:
        raise InvalidRequestError("The request is too large.", status_code=414)
    check_params(request.args)
