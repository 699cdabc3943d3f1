"""Whether a host is this machine: the only place plain http:// redirect URIs
(RFC 8252 §7.3), clear-text SMTP credentials and the local outbox are allowed."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """`localhost` (RFC 6761 keeps it on this machine) or a loopback address."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
