"""The presigned NSEC chain over the zone's finite set of names (RFC 4034 4, RFC 4035 3.1.3): what
NXDOMAIN and NODATA answers carry, found by a binary search on the query path, never signed there."""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping

from dnsbalance.protocol.renderer import wire_name


def canonical_key(name: str) -> tuple[bytes, ...]:
    """RFC 4034 6.1 order: labels compared right to left, lower case (the apex '' first)."""
    return tuple(label.encode() for label in reversed(name.lower().split("."))) if name else ()


def type_bitmap(types: Iterable[int]) -> bytes:
    """RFC 4034 4.1.2: per window of 256 types, the bytes of set bits up to the last one used."""
    windows: dict[int, bytearray] = {}
    for rtype in sorted(set(types)):
        window, low = divmod(rtype, 256)
        bits = windows.setdefault(window, bytearray())
        while len(bits) <= low // 8:
            bits.append(0)
        bits[low // 8] |= 0x80 >> (low % 8)
    return b"".join(bytes((window, len(bits))) + bytes(bits) for window, bits in sorted(windows.items()))


class Chain:
    """Every owner name (absolute, no trailing dot) with its NSEC RDATA, in canonical order."""

    __slots__ = ("by_key", "following", "keys", "names", "rdata", "types")

    def __init__(self, types: Mapping[str, Iterable[int]]) -> None:
        self.names = sorted(types, key=canonical_key)
        self.keys = [canonical_key(n) for n in self.names]
        self.by_key = frozenset(self.keys)
        self.types = {name: frozenset(types[name]) for name in self.names}
        self.following = {name: wire_name(self.names[(i + 1) % len(self.names)]) for i, name in enumerate(self.names)}
        # the NSEC of each name with every type it has in some region (what NXDOMAIN proofs and most NODATA carry)
        self.rdata = {name: self.with_types(name, self.types[name]) for name in self.names}

    def with_types(self, name: str, types: Iterable[int]) -> bytes:
        """The NSEC RDATA at `name` listing these types (a region's NODATA may need fewer than the union)."""
        return self.following[name] + type_bitmap(types)

    def proof_owners(self, key: tuple[bytes, ...], zone_depth: int) -> tuple[str, str]:
        """For a name that does not exist, given as its canonical key (lower-case labels, apex first): the owners
        of the NSEC covering it and of the one covering the wildcard at its closest encloser (RFC 4035 3.1.3.2).
        What covering() and closest_encloser() find, without text."""
        return self.covering_key(key), self.wildcard_owner(key[:-1], zone_depth)

    def covering_key(self, key: tuple[bytes, ...]) -> str:
        """The owner of the NSEC whose span holds the name of this canonical key (one that does not exist)."""
        return self.names[bisect_right(self.keys, key) - 1]

    def wildcard_owner(self, parent: tuple[bytes, ...], zone_depth: int) -> str:
        """The owner of the NSEC covering the wildcard at the closest encloser of a missing name whose parent
        has this canonical key: the parent's longest existing part (its whole, or the apex at worst)."""
        encloser = parent[:zone_depth]
        for end in range(len(parent), zone_depth, -1):
            if parent[:end] in self.by_key:
                encloser = parent[:end]
                break
        return self.covering_key((*encloser, b"*"))

    def covering(self, name: str) -> str:
        """The owner of the NSEC whose span holds `name` (a name that does not exist; the last one wraps)."""
        return self.names[bisect_right(self.keys, canonical_key(name)) - 1]

    def closest_encloser(self, name: str, zone: str) -> str:
        """The longest existing ancestor of a name that does not exist (the apex at worst)."""
        labels = name.lower().split(".")
        for start in range(1, len(labels)):
            ancestor = ".".join(labels[start:])
            if ancestor in self.rdata:
                return ancestor
            if ancestor == zone:
                break
        return zone
