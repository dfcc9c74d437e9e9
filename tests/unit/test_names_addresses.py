"""The shared helpers for zone-relative names, host:port and client addresses (one copy each)."""
from __future__ import annotations

import ipaddress

import pytest

from dnsbalance.configuration.names import relative_to
from dnsbalance.protocol.addresses import client_address, host_port


@pytest.mark.parametrize("name, expected", [
    ("deb.cdn.example.org", "deb"), ("DEB.Cdn.Example.ORG.", "deb"), ("cdn.example.org.", "@"),
    ("_turn._udp.cdn.example.org", "_turn._udp"), ("example.org", None), ("xcdn.example.org", None),
])
def test_relative_to(name: str, expected: str | None) -> None:
    assert relative_to(name, "cdn.example.org") == expected


def test_host_port_brackets_ipv6_only() -> None:
    assert (host_port("127.0.0.1", 53), host_port("::1", 5353)) == ("127.0.0.1:53", "[::1]:5353")


def test_client_address_drops_the_ipv6_scope() -> None:
    assert client_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert client_address("192.0.2.7") == ipaddress.ip_address("192.0.2.7")
    with pytest.raises(ValueError):
        client_address("not-an-address")
