"""What apt gets from a mirror, as probe targets: each address it is served at (its A and AAAA records) under
each name it is served for (the balanced name apt sends as HTTP Host and TLS SNI, or the mirror's `host:`).

The served check (health/checks/served.py) probes these; the table builder (ranking/build.py) reads their
verdicts by the same keys, so an address is answered only on its own verdict and a name only where the mirror
serves it. Keys: `<mirror key>@<address>#<host>` (`jaist@192.0.2.1#deb.cdn.example.org`), the `@` part only
with `health.addresses`, the `#` part only with `health.vhost`."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from dnsbalance.configuration.model import (
    APEX,
    Config,
    Mirror,
    archives_of,
    fallback_archive,
    mirror_key,
)


@dataclass(frozen=True)
class Served:
    key: str  # the health key of this (mirror, archive, address, host)
    owner: str  # the (mirror, archive) health key it belongs to
    base: str  # the archive's base URL as configured
    stamp: str  # the archive's stamp path under it
    address: str | None  # connect here; None: wherever the URL's host resolves
    host: str | None  # the Host (and SNI) sent; None: the URL's own host


def served_key(owner: str, address: str | None, host: str | None) -> str:
    return owner + (f"@{address}" if address else "") + (f"#{host}" if host else "")


def probing_served(config: Config) -> bool:
    health = config.settings.health
    return health.enabled and (health.addresses or health.vhost)


def host_for(config: Config, mirror: Mirror, name: str) -> str | None:
    """The Host a client of table name `name` sends to `mirror`; None when virtual hosts are not probed."""
    if not config.settings.health.vhost:
        return None
    if mirror.host:
        return mirror.host
    zone = config.settings.zone
    return zone if name == APEX else f"{name}.{zone}"


def connect_to(config: Config, address: str) -> str | None:
    """The address a served probe connects to for one of the mirror's records; None: not per address."""
    return address if config.settings.health.addresses else None


def served_targets(config: Config) -> list[Served]:
    """Every (mirror, archive, address, host) a client can be handed, in configuration order: only the
    names a table lists the mirror under, and only the archives those names are served from."""
    if not probing_served(config):
        return []
    archives = archives_of(config.settings)
    fallback = fallback_archive(archives)
    hosts: dict[tuple[str, str], list[str | None]] = {}  # (mirror, archive) -> hosts, in table order
    for _, name, archive, mirror in config.mirror_listings():
        found = hosts.setdefault((mirror.name, archive.name), [])
        host = host_for(config, mirror, name)
        if host not in found:
            found.append(host)
    targets = []
    for archive in archives:
        for mirror in config.mirrors.values():
            base = mirror.url_for(archive, fallback)
            if not base or base.startswith("rsync://") or (mirror.name, archive.name) not in hosts:
                continue
            owner = mirror_key(mirror.name, archive)
            addresses = [connect_to(config, a) for a in mirror.ipv4 + mirror.ipv6] or [None]
            for address in dict.fromkeys(addresses):
                for host in hosts[(mirror.name, archive.name)]:
                    targets.append(Served(served_key(owner, address, host), owner, base, archive.stamp, address,
                                          host))
    return targets


def at_address(url: str, address: str | None) -> str:
    """`url` with its host replaced by `address` (the port and path kept)."""
    if address is None:
        return url
    parts = urlsplit(url)
    literal = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = literal + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_host(url: str) -> str | None:
    """The URL's host name, as Host and SNI when only addresses are probed; None for an address literal
    (nothing to tell the server that the address does not)."""
    host = urlsplit(url).hostname
    if host is None:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None
