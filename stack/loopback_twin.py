"""Hold the IPv6 twin of every loopback port the stack publishes as `localhost`.

The stack binds 127.0.0.1 but names its URLs `localhost`, because browsers refuse
IP addresses as WebAuthn relying parties. Where `localhost` also resolves to ::1
(and resolvers put ::1 first), every client — the app calling the issuer with its
client secret, the proxy fetching the JWKS, the browser — tries [::1]:port before
127.0.0.1:port. Another local user listening there would receive those calls.

So the supervisor binds [::1]:port itself, without listening, for as long as the
stack runs: nobody else can take the port, and a connection to it is refused at
once, so clients fall back to the service on 127.0.0.1.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable


class TwinTaken(Exception):
    """Another process holds [::1]:port, where `localhost` may lead clients."""


def hold(binds: Iterable[tuple[str, int]]) -> list[socket.socket]:
    """Bind [::1]:port for every IPv4 loopback (host, port); the caller closes them.

    A host without IPv6 loopback needs nothing held (nobody can listen there
    either). A twin already taken is refused with `TwinTaken`, after releasing
    what was held so far.
    """
    held: list[socket.socket] = []
    for host, port in binds:
        if not _ipv4_loopback(host):
            continue
        try:
            twin = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:  # no IPv6 at all
            continue
        try:
            twin.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            twin.bind(("::1", port))
        except OSError as error:
            twin.close()
            if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue
            release(held)
            if error.errno == errno.EADDRINUSE:
                raise TwinTaken(
                    f"[::1]:{port} is in use by another process, and clients that "
                    f"resolve `localhost` to ::1 would reach it instead of {host}:{port}: "
                    "stop it, or choose another port"
                ) from None
            raise
        held.append(twin)
    return held


def release(held: list[socket.socket]) -> None:
    for twin in held:
        twin.close()
    held.clear()


def _ipv4_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback
