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


# apt reads its SRV answer into a 512-byte buffer whatever the resolver sends (apt-pkg/contrib/srvrec.cc,
# GetSrvRecords: `unsigned char answer[PACKETSZ]`, through glibc's res_query). When the answer section ends past
# it, apt's parse stops partway and returns before its sort by priority, so it takes the first record in the
# resolver's order, which unbound rotates: the weights are lost (a real apt behind unbound, nine mirrors, a
# 543-byte answer: the mirror weighted 9000 of 9800 first in 2 runs of 20). What follows the answers (the
# additional section, an OPT record) may be cut without harm: nine records ending at byte 507 of a 518-byte EDNS
# reply were all read. An apt set therefore carries the longest prefix of its weighted order whose answer section
# ends within 512 bytes as a resolver writes it: the first choice still follows every mirror's weight; only the
# fallbacks past the cut are left out.
APT_ANSWER_SIZE = 512
_HEADER = 12
_SRV_FIXED = 2 + 10 + 6  # owner as a compression pointer; type, class, TTL, RDLENGTH; priority, weight, port


def wire_length(labels: tuple[bytes, ...]) -> int:
    """A name's uncompressed wire length: each label with its length byte, and the root."""
    return sum(1 + len(label) for label in labels) + 1


def srv_record_size(target: tuple[bytes, ...]) -> int:
    """An SRV record's size in a resolver's reply to apt (the owner a pointer, the target written whole)."""
    return _SRV_FIXED + wire_length(target)


def apt_records(qname: tuple[bytes, ...], targets: list[tuple[bytes, ...]]) -> int:
    """How many of the SRV records, in order, end within APT_ANSWER_SIZE bytes of a resolver's reply to apt: the
    header and question, then per record the fixed fields and the target uncompressed (RFC 2782 forbids
    compressing it; unbound and BIND write it whole). At least one, whatever its size."""
    return apt_fit(qname, [srv_record_size(t) for t in targets])


def apt_fit(qname: tuple[bytes, ...], sizes: list[int]) -> int:
    """apt_records, given each record's srv_record_size."""
    room = APT_ANSWER_SIZE - _HEADER - (wire_length(qname) + 4)
    count = 0
    for size in sizes:
        room -= size
        if room < 0:
            break
        count += 1
    return max(count, 1)
