"""Where to send a browser after login or logout: local paths only.

The `next` parameter is attacker-controlled (anyone can send a victim a login
link), so anything that could leave this origin is replaced by the default.
"""

from __future__ import annotations

from urllib.parse import urlsplit

# Long enough for any authorization request URL we would serve.
MAX_LENGTH = 4096
# Browsers treat "\" like "/" and drop tabs and newlines inside URLs, so
# "/\evil.example" or "/\t/evil.example" would become protocol-relative.
_FORBIDDEN = frozenset("\\") | {chr(c) for c in range(0x20)} | {"\x7f"}


def safe_next(target: str | None, default: str) -> str:
    """`target` when it is a path on this origin, else `default`."""
    if not target or len(target) > MAX_LENGTH:
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    if any(ch in _FORBIDDEN for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def local_part(url: str, host_url: str) -> str:
    """Turn an absolute URL on this origin into its path and query."""
    parts = urlsplit(url)
    origin = urlsplit(host_url)
    if (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc):
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path
    return url
