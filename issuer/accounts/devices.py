"""Known devices: a browser that logged in to an account before (OWASP's device cookies).

Without them, anyone who knows an email address can lock its owner out: five
wrong passwords from anywhere and the owner's right one answers 429 too. With
them, a successful login leaves a signed cookie naming the account (a digest of
it) and a random device id; later attempts for that account from that browser
spend the device's own failure budget (`throttle.DEVICE`), not the account's,
which strangers exhaust only for unknown devices.

The cookie is signed with the issuer's secret key, so it cannot be made up; a
stolen one buys its thief the device's budget for that one account, no more.
Each success issues a new device id, so failures counted against the old one
are left behind with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Request, Response, current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "issuer_device"
#: How long a browser stays known without logging in again.
LIFETIME = 180 * 24 * 3600
#: Accounts one browser is remembered for (the newest win).
MAX_ACCOUNTS = 5


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="issuer-known-device")


def _account_digest(email: str) -> str:
    """The cookie names the account without spelling out its address, keyed so that
    nobody holding the cookie can test guesses of which addresses used this browser."""
    key = f"issuer-known-device:{current_app.secret_key}".encode()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()[:32]


def _entries(request: Request) -> list[list[str]]:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return []
    try:
        entries = _serializer().loads(raw, max_age=LIFETIME)
    except BadSignature:
        return []
    if not isinstance(entries, list):
        return []
    return [
        e
        for e in entries
        if isinstance(e, list) and len(e) == 2 and all(isinstance(v, str) for v in e)
    ][:MAX_ACCOUNTS]


def known_device(request: Request, email: str) -> str | None:
    """This browser's device id for the account `email` (normalised), if it has one."""
    account = _account_digest(email)
    return next((device for digest, device in _entries(request) if digest == account), None)


def remember(request: Request, response: Response, email: str) -> None:
    """After a successful login: this browser is known for `email`, with a new device id."""
    account = _account_digest(email)
    entries = [[account, secrets.token_urlsafe(16)]]
    entries += [e for e in _entries(request) if e[0] != account][: MAX_ACCOUNTS - 1]
    response.set_cookie(
        COOKIE,
        _serializer().dumps(entries),
        max_age=LIFETIME,
        httponly=True,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        samesite="Lax",
    )
