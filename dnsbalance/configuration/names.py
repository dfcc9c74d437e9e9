"""DNS name and address syntax, as the configuration accepts it."""
from __future__ import annotations

import ipaddress
import re

from dnsbalance.configuration.model import APEX

_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def is_dns_name(name: str) -> bool:
    """Host-name syntax plus underscores (for _turn._udp); at most 253 characters, labels 1..63."""
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def normalise_name(name: str) -> str:
    return name.rstrip(".").lower()


def relative_to(name: str, zone: str) -> str | None:
    """'deb' for deb.cdn.example.org (any letter case, with or without the final dot), '@' for the apex,
    None outside the zone. `zone` is lower case without the final dot, as the configuration keeps it."""
    text = normalise_name(name)
    if text == zone:
        return APEX
    if text.endswith("." + zone):
        return text[: -len(zone) - 1]
    return None


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_hostport(text: str) -> tuple[str, int]:
    """'127.0.0.1:20053', '[::1]:53' or '0.0.0.0:53' -> (host, port); ValueError when malformed."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([0-9.]+):(\d+)", text.strip())
    if not match:
        raise ValueError(f"'{text}' is not HOST:PORT (IPv6 as [ADDR]:PORT)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if parse_address(host) is None:
        raise ValueError(f"'{host}' is not an IP address")
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return host, port
