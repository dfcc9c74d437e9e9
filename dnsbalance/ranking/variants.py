"""Precomputed A/AAAA answers for one pool, so that a query costs a weighted pick, not a draw and a pack.

The first address follows the weights exactly: the first mirror is picked by its weight at query time
(one random number and a bisection). What follows it is one of a few precomputed draws without
replacement from the other mirrors, each already in wire format. Both the fast path and the full path
answer from these, so their bytes agree.
"""
from __future__ import annotations

import ipaddress
import struct
from bisect import bisect_right
from itertools import accumulate
from random import Random

from dnsbalance.ranking.active import Pool, RType
from dnsbalance.ranking.draw import draw

# Precomputed continuations per first mirror: up to 8, fewer for big pools so that a pool holds about
# 16 answers (a table of 25,000 pools must fit in memory when every pool has been used).
MAX_VARIANTS, POOL_BUDGET, MIN_VARIANTS = 8, 16, 2
POINTER_TO_QNAME = b"\xc0\x0c"  # the question name always starts at offset 12
CLASS_IN = 1


class Variant:
    """One precomputed answer. Slots, not a dataclass: a big table holds millions of these."""

    __slots__ = ("names", "addresses", "wire")

    def __init__(self, names: tuple[str, ...], addresses: tuple[str, ...], wire: bytes) -> None:
        self.names = names  # mirrors in answer order
        self.addresses = addresses
        self.wire = wire  # the answer records, owner compressed to the question name


def address_record(rtype: RType, address: str, ttl: int) -> bytes:
    packed = ipaddress.ip_address(address).packed
    return POINTER_TO_QNAME + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(packed)) + packed


class Variants:
    def __init__(self, pool: Pool, rtype: RType, answers: int, ttl: int, rng: Random) -> None:
        weights = pool.weights
        self.cumulative = list(accumulate(weights))
        self.total = float(self.cumulative[-1])
        records = {a: address_record(rtype, a, ttl) for c in pool.candidates for a in c.addresses}
        table = []
        self.per_first = max(MIN_VARIANTS, min(MAX_VARIANTS, POOL_BUDGET // len(pool.candidates)))
        for first, candidate in enumerate(pool.candidates):
            others = [c for i, c in enumerate(pool.candidates) if i != first]
            other_weights = [w for i, w in enumerate(weights) if i != first]
            variants = []
            for _ in range(self.per_first):
                rest = draw(others, other_weights, answers - 1, rng)
                picked = [candidate, *rest]
                addresses = tuple(a for c in picked for a in _rotated(c.addresses, rng))[:answers]
                variants.append(Variant(tuple(c.name for c in picked), addresses,
                                        b"".join(records[a] for a in addresses)))
            table.append(tuple(variants))
        self.by_first = tuple(table)

    def pick(self, rng: Random) -> Variant:
        first = bisect_right(self.cumulative, rng.random() * self.total)
        return self.by_first[first][int(rng.random() * self.per_first)]


def _rotated(addresses: tuple[str, ...], rng: Random) -> tuple[str, ...]:
    """A mirror with several addresses of one family: start at a random one, spreading the load."""
    if len(addresses) < 2:
        return addresses
    start = rng.randrange(len(addresses))
    return addresses[start:] + addresses[:start]
