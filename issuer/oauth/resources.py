"""Resource indicators (RFC 8707): which audience an access token is for.

Neon checks a token's signature, `kid`, `exp`/`nbf` and, when configured, its
`aud`; nothing else tells a database token from any other JWT this issuer
signs. So the database is a resource with an audience of its own, and a token
carries it only when a client that is *allowed* that audience asked for it:

- A client is registered with the audiences it may obtain (none by default).
- At `/authorize`, each `resource` parameter (repeatable) must be one of the
  client's audiences, else `invalid_target`; the user consents to them and the
  code (then every refresh token of its family) remembers them.
- At `/token`, at most one `resource` picks the token's audience among those
  granted; with none, a grant of exactly one resource uses it. One audience
  per token: a token good at two resources is a token stolen from both.
- A token for no resource names the issuer's `/userinfo` as audience: it is good
  there and nowhere else. ID tokens name the client (OpenID Connect).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error

#: Longest resource URI accepted (registration and requests).
MAX_LENGTH = 255
#: Most resources one authorization request may name.
MAX_PER_REQUEST = 8


class InvalidTargetError(OAuth2Error):
    """RFC 8707 section 2: the requested resource is invalid, unknown or not allowed."""

    error = "invalid_target"
    status_code = 400


def check_uri(uri: str) -> str:
    """An absolute URI without a fragment (RFC 8707 section 2), printable ASCII."""
    if not uri or len(uri) > MAX_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in uri):
        raise ValueError(f"resource {uri[:40]!r} must be 1 to {MAX_LENGTH} printable characters")
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise ValueError(f"resource {uri!r} is not a URI") from None
    if not parts.scheme or "#" in uri:
        raise ValueError(f"resource {uri!r} must be an absolute URI without a fragment")
    return uri


def join(resources: Iterable[str]) -> str:
    """How a grant's resources are stored: space-separated, as scopes are."""
    return " ".join(resources)


def split(stored: str | None) -> tuple[str, ...]:
    return tuple(stored.split()) if stored else ()


def requested(values: Sequence[str]) -> tuple[str, ...]:
    """The distinct `resource` values of a request, each a valid URI."""
    if len(values) > MAX_PER_REQUEST:
        raise InvalidTargetError(f"At most {MAX_PER_REQUEST} resources per request.")
    try:
        return tuple(dict.fromkeys(check_uri(v) for v in values))
    except ValueError:
        raise InvalidTargetError("Each 'resource' must be an absolute URI.") from None


def authorize(allowed: Sequence[str], wanted: Sequence[str]) -> tuple[str, ...]:
    """The resources an authorization request may be granted: all it asks for, or an error."""
    refused = [r for r in wanted if r not in allowed]
    if refused:
        raise InvalidTargetError("The client may not ask for this resource.")
    return tuple(wanted)


def audience(allowed: Sequence[str], granted: Sequence[str], wanted: Sequence[str]) -> str | None:
    """The one resource a token request gets (None: the issuer's `/userinfo`).

    `granted` is what the user consented to (the code or refresh token's
    resources; for client credentials, the client's audiences); `allowed` is the
    client's registration today, so an audience taken from a client stops
    being issued at its next refresh.
    """
    if len(wanted) > 1:
        raise InvalidTargetError("Ask for one resource per token request.")
    if wanted:
        choice = wanted[0]
    elif len(granted) == 1:
        choice = granted[0]
    elif granted:
        raise InvalidTargetError("This grant covers several resources: name one with 'resource'.")
    else:
        return None
    if choice not in granted or choice not in allowed:
        raise InvalidTargetError("This grant does not cover the requested resource.")
    return choice
