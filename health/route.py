"""Whether the prober has a way to an address at all: a prober with no IPv6 (no route, no source address) must
not take every AAAA out of the answers because its own connects fail.

Asked of the kernel without sending anything: connect() on a UDP socket only looks the route up and picks a
source address, so ENETUNREACH or EADDRNOTAVAIL here is this machine's lack, never the mirror's (a remote
router's unreachable comes back to a TCP connect, which this does not make)."""
from __future__ import annotations

import errno
import ipaddress
import os
import socket

# what a local route lookup says when this host cannot send to the address at all
NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})
DISCARD_PORT = 9  # any port: nothing is sent


def no_route(address: str, source: str | None = None) -> str | None:
    """Why this host cannot send to `address` (from `source`, health.source, when set); None when it can (the
    probe then finds out whether the mirror answers)."""
    version = ipaddress.ip_address(address).version
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    if source is not None and ipaddress.ip_address(source).version != version:
        return f"health.source {source} is not an IPv{version} address"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            if source is not None:
                probe.bind((source, 0))
            probe.connect((address, DISCARD_PORT))
    except OSError as exc:
        if exc.errno in NO_ROUTE:
            return os.strerror(exc.errno)
    return None
