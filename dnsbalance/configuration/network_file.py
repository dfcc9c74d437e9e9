"""Network and AS tables: the `networks:` list of config/network/NAME.yaml, the names of config/asn/AS2500.yaml,
and the checks across network files (the same prefix twice, one prefix inside another)."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from dnsbalance.configuration.checker import Checker, kind
from dnsbalance.configuration.model import Table
from dnsbalance.geo.locate import Network
from dnsbalance.configuration.yamlpos import PosDict, PosList

NETWORKS_KEY = "networks"
ASN_FILE = re.compile(r"AS(\d{1,10})", re.IGNORECASE)
ASN_MAX = 0xFFFFFFFF


def asn_of(stem: str) -> int | None:
    """'AS2500' (any case) -> 2500; None when the name is not AS<number> in 1..4294967295."""
    match = ASN_FILE.fullmatch(stem)
    number = int(match.group(1)) if match else 0
    return number if 0 < number <= ASN_MAX else None


def read_networks(check: Checker, path: Path, top: PosDict) -> tuple[tuple[Network, ...], tuple[int, ...]]:
    """The `networks:` key of a network table, taken out of `top` (so it is not read as an owner name):
    its prefixes and the line of each."""
    if NETWORKS_KEY not in top:
        check.error(path, top.line, f"{NETWORKS_KEY}: required in a network table (a list of IPv4/IPv6 prefixes)")
        return (), ()
    line = top.line_of(NETWORKS_KEY)
    items: Any = top.pop(NETWORKS_KEY)
    if isinstance(items, str):
        items = PosList([items], line=line)
        items.item_lines = [line]
    if not isinstance(items, PosList) or not items:
        got = "an empty list" if isinstance(items, PosList) else kind(items)
        check.error(path, line, f"{NETWORKS_KEY}: must be a non-empty list of IPv4/IPv6 prefixes, got {got}")
        return (), ()
    found: list[Network] = []
    lines: list[int] = []
    for index, item in enumerate(items):
        at = items.line_of(index)
        text = str(item).strip() if isinstance(item, str) else None
        try:
            network = ipaddress.ip_network(text) if text else None
        except ValueError:
            loose = None
            try:
                loose = ipaddress.ip_network(text, strict=False) if text else None
            except ValueError:
                pass
            if loose is not None:
                check.error(path, at, f"{NETWORKS_KEY}: '{text}' has host bits set (the network is {loose})")
            else:
                check.error(path, at, f"{NETWORKS_KEY}: {item!r} is not an IPv4 or IPv6 prefix")
            continue
        if network is None:
            check.error(path, at, f"{NETWORKS_KEY}: {item!r} is not an IPv4 or IPv6 prefix")
            continue
        if network.version == 6 and network.prefixlen >= 96 and network.network_address.ipv4_mapped is not None:
            check.error(path, at, f"{NETWORKS_KEY}: '{text}' is IPv4-mapped; clients are matched as IPv4, so write "
                                  "the IPv4 prefix")
            continue
        found.append(network)
        lines.append(at)
    return tuple(found), tuple(lines)


def overlapping_networks(check: Checker, tables: list[Table]) -> None:
    """The same prefix twice is an error (which table would win is a coin toss); a prefix inside another is
    allowed (the longest prefix is tried first, the wider one for names it lacks) but said, since it is
    easily a mistake."""
    listed = sorted(((network, table, line) for table in tables
                     for network, line in zip(table.networks, table.network_lines)),
                    key=lambda item: (item[0].version, int(item[0].network_address), item[0].prefixlen))
    # Sorted by start then length, a prefix's enclosing prefixes come before it: keep the chain that
    # still contains the current one.
    enclosing: list[tuple[Network, Table, int]] = []
    for network, table, line in listed:
        while enclosing and not (enclosing[-1][0].version == network.version
                                 and network.subnet_of(enclosing[-1][0])):  # type: ignore[arg-type]
            enclosing.pop()
        if enclosing:
            outer, outer_table, outer_line = enclosing[-1]
            where = f"{outer_table.source.parent.name}/{outer_table.source.name}:{outer_line}"
            if outer == network:
                check.error(table.source, line, f"{NETWORKS_KEY}: {network} is also listed in {where}")
                continue
            if outer_table is table:
                check.warning(table.source, line, f"{NETWORKS_KEY}: {network} is inside {outer} (line {outer_line}) "
                                                  "of the same table and changes nothing")
            else:
                check.warning(table.source, line, f"{NETWORKS_KEY}: {network} is inside {outer} of {where}: "
                                                  f"its clients get this table first, the other for names this one "
                                                  "lacks")
        enclosing.append((network, table, line))
