"""OpenID Connect's `prompt` and `max_age`: when an authorization request needs a login.

`prompt=login` asks for a login that happens after the request; `max_age=N` for
one at most N seconds old (`max_age=0` is `prompt=login`). "After the request"
needs to know when the request was first seen, and that must not come from the
URL: the login page returns to the very URL it was given, so anything in it
could be replayed without logging in. So the first time `/authorize` sees a
request that needs a login, it writes the time next to a digest of the request
into the browser's session, which only this server can sign. Coming back after
the login, the login is newer than that time and the request goes on. Replaying
the URL finds the mark and no newer login; dropping the mark (an older cookie)
makes a new one: either way the password is asked again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import session

from issuer.accounts.sessions import REAUTH_MARK as _MARK

#: Parameters of our own forms (consent), not of the authorization request.
_FORM_FIELDS = frozenset({"csrf_token", "allow", "deny"})
PROMPT_VALUES = frozenset({"none", "login", "consent", "select_account"})
#: How long a login asked for by `prompt=login`/`max_age` counts for its request:
#: time enough to type a password, not to leave a consent page open for hours.
MARK_LIFETIME = 10 * 60


@dataclass(frozen=True)
class AuthenticationRequest:
    """What an authorization request says about the login it needs."""

    prompts: frozenset[str]
    max_age: int | None
    digest: str

    @property
    def silent(self) -> bool:
        """`prompt=none`: never show a page, answer with an error instead."""
        return "none" in self.prompts

    def needs_login(self, auth_time: int | None, now: float | None = None) -> bool:
        """Whether the current login (`auth_time`, None: nobody) is not good enough."""
        if auth_time is None:
            return True
        now = time.time() if now is None else now
        fresh_enough = self.max_age is None or now - auth_time <= self.max_age
        if "login" not in self.prompts and fresh_enough:
            return False
        since = self._since(now)
        return since is None or auth_time < since

    def _since(self, now: float) -> int | None:
        """When this request first asked for a login, if that was recently."""
        mark = session.get(_MARK)
        if not isinstance(mark, dict) or mark.get("request") != self.digest:
            return None
        since = mark.get("since")
        if not isinstance(since, int) or now - since > MARK_LIFETIME:
            return None  # an abandoned request replayed later asks again
        return since

    def mark(self, now: float | None = None) -> None:
        """Remember when this request first asked for a login (kept while it is fresh)."""
        now = time.time() if now is None else now
        if self._since(now) is None:
            # Whole seconds, as auth_time: a login in the same second counts as fresh.
            session[_MARK] = {"request": self.digest, "since": int(now)}

    def done(self) -> None:
        """The request got its answer: its mark has served (another request's stays)."""
        mark = session.get(_MARK)
        if isinstance(mark, dict) and mark.get("request") == self.digest:
            session.pop(_MARK)


def parse(params: Mapping[str, str]) -> AuthenticationRequest:
    """`prompt` and `max_age` from the request's parameters, checked.

    Raises InvalidRequestError (the caller adds the redirect URI and state).
    """
    prompts = frozenset(params.get("prompt", "").split())
    if not prompts <= PROMPT_VALUES:
        raise InvalidRequestError("Unknown 'prompt' value.")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("'prompt=none' cannot be combined with other values.")
    raw = params.get("max_age")
    max_age = None
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
            raise InvalidRequestError("'max_age' must be a number of seconds.")
        max_age = int(raw)
    request = sorted((k, v) for k, v in params.items() if k not in _FORM_FIELDS)
    digest = hashlib.sha256(repr(request).encode()).hexdigest()[:32]
    return AuthenticationRequest(prompts, max_age, digest)
