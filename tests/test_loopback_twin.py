"""The stack holds [::1]:port for each service it binds on 127.0.0.1 and names
`localhost`, so no other local user can listen where `localhost` may lead."""

from __future__ import annotations

import socket

import pytest

from stack import loopback_twin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ipv6_loopback(port: int) -> socket.socket:
    twin = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    twin.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    twin.bind(("::1", port))
    return twin


@pytest.fixture
def port() -> int:
    port = free_port()
    try:
        ipv6_loopback(port).close()
    except OSError:
        pytest.skip("this host has no IPv6 loopback: there is nothing to hold")
    return port


def test_a_held_twin_cannot_be_taken_and_refuses_connections(port: int) -> None:
    held = loopback_twin.hold([("127.0.0.1", port)])
    try:
        with pytest.raises(OSError) as taken:
            ipv6_loopback(port)
        assert "in use" in str(taken.value)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("::1", port), timeout=2)
    finally:
        loopback_twin.release(held)
    ipv6_loopback(port).close()  # released


def test_a_twin_already_taken_stops_the_stack_and_releases_the_others(port: int) -> None:
    other = free_port()
    squatter = ipv6_loopback(port)
    squatter.listen()
    try:
        with pytest.raises(loopback_twin.TwinTaken) as refused:
            loopback_twin.hold([("127.0.0.1", other), ("127.0.0.1", port)])
        assert f"[::1]:{port} is in use by another process" in str(refused.value)
        ipv6_loopback(other).close()  # the first twin was released
    finally:
        squatter.close()


def test_only_ipv4_loopback_binds_have_twins(port: int) -> None:
    held = loopback_twin.hold([("0.0.0.0", port), ("192.0.2.1", port), ("localhost", port)])
    assert held == []
    ipv6_loopback(port).close()
