"""Precomputed A/AAAA answers for one pool, so that a query costs a weighted pick, not a draw and a pack.

Small pools (up to EXACT_LIMIT ordered answers, e.g. 4 mirrors answered 3 or 4 at a time) are enumerated:
every ordered answer with its exact probability under the sequential weighted draw, picked with one random
number and a bisection, so every position follows the weights exactly. Bigger pools pick the first mirror
by its exact weight and what follows from a few precomputed draws of the others (redrawn with every
table). Both the fast path and the full path answer from these, so their bytes agree.
"""
from __future__ import annotations

import ipaddress
import math
import struct
from bisect import bisect_right
from itertools import accumulate, permutations
from random import Random
from typing import Iterator

from dnsbalance.protocol.codes import DClass, RType
from dnsbalance.ranking.active import Candidate, Pool
from dnsbalance.ranking.draw import draw

EXACT_LIMIT = 64  # ordered answers enumerated per pool: 4 mirrors answered 3 or 4 at a time is 24
# Sampled pools: continuations per first mirror, up to 8, fewer for big pools so that a pool holds about
# 16 answers (a table of 25,000 pools must fit in memory when every pool has been used).
MAX_VARIANTS, POOL_BUDGET, MIN_VARIANTS = 8, 16, 2
POINTER_TO_QNAME = b"\xc0\x0c"  # the question name always starts at offset 12


class Variant:
    """One precomputed answer. Slots, not a dataclass: a big table holds millions of these."""

    __slots__ = ("names", "addresses", "wire")

    def __init__(self, names: tuple[str, ...], addresses: tuple[str, ...], wire: bytes) -> None:
        self.names = names  # mirrors in answer order
        self.addresses = addresses
        self.wire = wire  # the answer records, owner compressed to the question name


def address_record(rtype: RType, address: str, ttl: int) -> bytes:
    packed = ipaddress.ip_address(address).packed
    return POINTER_TO_QNAME + struct.pack("!HHIH", rtype, DClass.IN, ttl, len(packed)) + packed


class Variants:
    def __init__(self, pool: Pool, rtype: RType, answers: int, ttl: int, rng: Random) -> None:
        self._records = {a: address_record(rtype, a, ttl) for c in pool.candidates for a in c.addresses}
        self.answers = answers
        count = len(pool.candidates)
        depth = min(answers, count)
        self.exact = math.perm(count, depth) <= EXACT_LIMIT
        if self.exact:
            self._enumerate(pool, depth, rng)
        else:
            self._sample(pool, rng)
        del self._records  # the wire is in the variants now

    def _variant(self, picked: list[Candidate], rng: Random) -> Variant:
        addresses = tuple(a for c in picked for a in _rotated(c.addresses, rng))[: self.answers]
        return Variant(tuple(c.name for c in picked), addresses, b"".join(self._records[a] for a in addresses))

    def _enumerate(self, pool: Pool, depth: int, rng: Random) -> None:
        weights = pool.weights
        total = sum(weights)
        choices, probabilities = [], []
        for order in permutations(range(len(weights)), depth):
            probability, left = 1.0, total
            for index in order:
                probability *= weights[index] / left
                left -= weights[index]
            choices.append(self._variant([pool.candidates[i] for i in order], rng))
            probabilities.append(probability)
        self.choices = tuple(choices)
        self.cumulative = list(accumulate(probabilities))
        self.total = self.cumulative[-1]  # random() * total < total = the last bound: always an index

    def _sample(self, pool: Pool, rng: Random) -> None:
        weights = pool.weights
        self.cumulative = list(accumulate(weights))
        self.total = float(self.cumulative[-1])
        self.per_first = max(MIN_VARIANTS, min(MAX_VARIANTS, POOL_BUDGET // len(pool.candidates)))
        table = []
        for first, candidate in enumerate(pool.candidates):
            others = [c for i, c in enumerate(pool.candidates) if i != first]
            other_weights = [w for i, w in enumerate(weights) if i != first]
            table.append(tuple(self._variant([candidate, *draw(others, other_weights, self.answers - 1, rng)], rng)
                               for _ in range(self.per_first)))
        self.by_first = tuple(table)

    def all(self) -> Iterator[Variant]:
        if self.exact:
            yield from self.choices
        else:
            for row in self.by_first:
                yield from row

    def pick(self, rng: Random) -> Variant:
        point = rng.random() * self.total
        if self.exact:
            return self.choices[bisect_right(self.cumulative, point)]
        first = bisect_right(self.cumulative, point)
        return self.by_first[first][int(rng.random() * self.per_first)]


def _rotated(addresses: tuple[str, ...], rng: Random) -> tuple[str, ...]:
    """A mirror with several addresses of one family: start at a random one, spreading the load."""
    if len(addresses) < 2:
        return addresses
    start = rng.randrange(len(addresses))
    return addresses[start:] + addresses[:start]
