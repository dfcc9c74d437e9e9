"""Network tables as a lookup structure: the prefixes of every config/network/*.yaml cut into disjoint
address ranges, each with the prefixes that cover it, so a client costs one bisect.

The range also gives the ECS scope the network part of an answer needs: the shortest prefix around the
address that stays inside its range, so no address within the scope is covered by a different set of
network tables (a /25 table inside the client's /24 makes the scope /25 or longer, never /24).
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable, Mapping

from dnsbalance.geo.locate import IPAddress, Network

WIDTH = {4: 32, 6: 128}


@dataclass(frozen=True)
class NetworkMatch:
    tables: tuple[str, ...]  # network tables covering the address, longest prefix first, each once
    prefixes: tuple[Network, ...]  # the prefixes that matched, longest first
    scope: int  # the shortest prefix around the address inside which every address matches the same way


NO_MATCH = NetworkMatch((), (), 0)


class _Family:
    """One address family: range starts, and per range the prefixes covering it (longest first)."""

    def __init__(self, width: int, prefixes: list[tuple[Network, str]]) -> None:
        self.width = width
        edges = {0}
        for network, _ in prefixes:
            edges.add(int(network.network_address))
            end = int(network.broadcast_address) + 1
            if end < 1 << width:
                edges.add(end)
        self.starts = sorted(edges)
        self.covering: list[tuple[tuple[Network, str], ...]] = []
        # CIDR prefixes nest or are disjoint, so walking the range starts with the prefixes sorted by start
        # (longer after shorter at the same start) keeps the covering ones as one chain.
        ordered = sorted(prefixes, key=lambda p: (int(p[0].network_address), p[0].prefixlen))
        chain: list[tuple[Network, str]] = []
        index = 0
        for start in self.starts:
            chain = [p for p in chain if int(p[0].broadcast_address) >= start]
            while index < len(ordered) and int(ordered[index][0].network_address) <= start:
                if int(ordered[index][0].broadcast_address) >= start:
                    chain.append(ordered[index])
                index += 1
            self.covering.append(tuple(sorted(chain, key=lambda p: -p[0].prefixlen)))

    def match(self, value: int) -> NetworkMatch:
        at = bisect_right(self.starts, value) - 1
        covering = self.covering[at]
        low = self.starts[at]
        high = self.starts[at + 1] - 1 if at + 1 < len(self.starts) else (1 << self.width) - 1
        scope = max(_bits_to_exclude(value, low - 1, self.width) if low > 0 else 0,
                    _bits_to_exclude(value, high + 1, self.width) if high + 1 < 1 << self.width else 0)
        if not covering and scope == 0:
            return NO_MATCH
        return NetworkMatch(tuple(dict.fromkeys(name for _, name in covering)),
                            tuple(network for network, _ in covering), scope)


def _bits_to_exclude(value: int, outside: int, width: int) -> int:
    """The shortest prefix length around `value` that does not contain `outside`: one more than the
    number of leading bits they share."""
    return width - (value ^ outside).bit_length() + 1


class NetworkMap:
    def __init__(self, tables: Mapping[str, Iterable[Network]]) -> None:
        prefixes = [(network, name) for name, networks in tables.items() for network in networks]
        self.empty = not prefixes
        self._families = {version: _Family(width, [p for p in prefixes if p[0].version == version])
                          for version, width in WIDTH.items()}

    def match(self, address: IPAddress) -> NetworkMatch:
        """The network tables that cover `address` (already unmapped from IPv4-mapped IPv6)."""
        if self.empty:
            return NO_MATCH
        return self._families[address.version].match(int(address))

