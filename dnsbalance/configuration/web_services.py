"""The SRV sets apt asks for before addresses (`Acquire::EnableSrvRecords`, RFC 2782): `_http._tcp.NAME` and
`_https._tcp.NAME` under every balanced name, and the per-mirror target names they point to.

Names only, no records: which owners exist, which mirrors and ports they list, what their targets are called.
The table builder (ranking/build.py) fills them from the same tables and health as NAME's A/AAAA answers.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from dnsbalance.configuration.model import APEX, MIRROR_LABEL

HTTP = "_http._tcp"
HTTPS = "_https._tcp"
WEB_SERVICES: dict[str, tuple[str, int]] = {HTTP: ("http", 80), HTTPS: ("https", 443)}  # label -> scheme, port


def web_owner(service: str, name: str) -> str:
    """`_http._tcp.deb` for the balanced name `deb`; `_http._tcp` for the apex."""
    return service if name == APEX else f"{service}.{name}"


def web_service(owner: str) -> tuple[str, str] | None:
    """(service, balanced name) for an SRV owner this module names, else None. Whether the name is balanced
    is the caller's to know (the table's names)."""
    for service in WEB_SERVICES:
        if owner == service:
            return service, APEX
        if owner.startswith(service + "."):
            return service, owner[len(service) + 1 :]
    return None


def mirror_target(mirror: str, name: str) -> str:
    """A mirror's SRV target for one balanced name, relative to the zone: `jaist.mirror.deb` (`jaist.mirror`
    for the apex). Per name, since the addresses served can differ by name (per-address health under each
    name's Host, each name's archive)."""
    parent = MIRROR_LABEL if name == APEX else f"{MIRROR_LABEL}.{name}"
    return f"{mirror.lower()}.{parent}"


def web_port(url: str | None, service: str) -> int | None:
    """The port a mirror serves `service` on: for http every mirror answering the name's A records (apt
    connects to them on 80 already), the URL's port when the URL is http; for https only mirrors whose URL is
    https, on its port or 443. None: not in that service's set."""
    scheme, default = WEB_SERVICES[service]
    parts = urlsplit(url) if url else None
    if parts is not None and parts.scheme == scheme:
        try:
            return parts.port or default
        except ValueError:
            return default
    return default if scheme == "http" else None


def web_reserved(name: str) -> bool:
    """Table names the zone answers itself: the SRV owners and anything named like a mirror target."""
    labels = name.split(".")
    return web_service(name) is not None or (len(labels) >= 2 and labels[1] == MIRROR_LABEL)
