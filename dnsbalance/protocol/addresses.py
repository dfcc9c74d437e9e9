"""Addresses as the listeners and probes write them: a client's address from its socket form, and
host:port for messages (an IPv6 host in brackets, as URLs and `--listen` take it)."""
from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(client: str) -> IPAddress:
    """The address of a client as a socket reports it, less an IPv6 scope ('fe80::1%eth0'); ValueError when
    it is not an address."""
    return ipaddress.ip_address(client.split("%", 1)[0])


def host_port(host: str, port: int) -> str:
    """'127.0.0.1:53', '[::1]:53'."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
