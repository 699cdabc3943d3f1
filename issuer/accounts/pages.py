"""What every account page shares: CSRF protection, strict headers, the 429 page."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect

from issuer import headers

csrf = CSRFProtect()


def protect(bp: Blueprint) -> Blueprint:
    """Every form of `bp` carries a CSRF token; its pages are never cached or framed
    and their forms go only here and where a login continues."""
    bp.before_request(csrf.protect)
    bp.after_request(headers.page_headers)
    return bp


def csrf_failed(error: CSRFError) -> tuple[str, int]:
    return render_template(
        "error.html",
        title="This form has expired",
        message=(
            "The form was too old or did not come from this site, so nothing was done. "
            "Go back, reload the page and try again."
        ),
    ), 400


def too_many_attempts(retry_after: int) -> Response:
    minutes = max(1, -(-retry_after // 60))
    response = make_response(
        render_template("accounts/throttled.html", minutes=minutes, retry_after=retry_after), 429
    )
    response.headers["Retry-After"] = str(retry_after)
    return response
