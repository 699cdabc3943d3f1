"""`/.well-known/jwks.json`: the published keys (next, active, retired), cacheable.

The body and its ETag come precomputed from the key ring, so a request costs a
`stat` of the manifest plus header handling. Verifiers (Neon's proxy among
them) cache the set; `Cache-Control: max-age` says for how long, and a
conditional GET with the ETag gets an empty 304.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request

from issuer.keyring import KeyRing, KeyRingError

bp = Blueprint("jwks", __name__)
log = logging.getLogger(__name__)


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    ring: KeyRing = current_app.extensions["keyring"]
    try:
        published = ring.jwks()
    except KeyRingError as exc:
        # The operator's problem, not the client's: say little, log the detail.
        log.error("cannot serve the JWKS: %s", exc)
        return Response(
            b'{"error":"temporarily_unavailable"}', status=503, mimetype="application/json"
        )
    headers = {
        "ETag": published.etag,
        "Cache-Control": f"public, max-age={current_app.config['ISSUER'].jwks_max_age}",
    }
    # Weak comparison, as RFC 9110 prescribes for If-None-Match; handles lists and "*".
    if request.if_none_match.contains_weak(published.etag[1:-1]):
        return Response(status=304, headers=headers)
    return Response(published.body, mimetype="application/json", headers=headers)
