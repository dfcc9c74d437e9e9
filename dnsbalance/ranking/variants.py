"""Precomputed A/AAAA answers for one pool, so that a query costs a weighted pick, not a draw and a pack.

The answer *sets* and their probabilities come from ranking/answersets.py: every mirror's share of first
addresses equals its (delivered) weight share whatever order a resolver puts the records in, with one
address per mirror (several addresses of one mirror would multiply its share behind a shuffling
resolver). Each set gets a random order, and its rotations are the variants, each with 1/size of the
set's probability, so the order is uniform too: a client that keeps our order (or a resolver that
rotates) sees the same shares. Pools with more than EXACT_LIMIT ordered answers keep one random
rotation per set instead: the sets stay exact, the order is exact in expectation (redrawn with every
table). Both the fast path and the full path answer from these, so their bytes agree.
"""
from __future__ import annotations

import ipaddress
import struct
from bisect import bisect_right
from itertools import accumulate
from random import Random
from typing import Iterator

from dnsbalance.protocol.codes import DClass, RType
from dnsbalance.ranking.answersets import Design, design
from dnsbalance.ranking.pool import Pool

# Ordered answers enumerated per pool. A pool has at most (mirrors x sizes used) sets; the rotations of
# 4 mirrors answered 2 to 4 at a time are a few dozen; past this limit, one rotation per set.
EXACT_LIMIT = 256
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
    def __init__(self, pool: Pool, rtype: RType, answers: int, ttl: int, rng: Random,
                 min_answers: int = 1) -> None:
        self.answers = answers
        self.design: Design = design(pool.weights, answers, min_answers, rng)
        candidates = pool.candidates
        ordered = sum(len(members) for members, _ in self.design.sets)
        self.exact = ordered <= EXACT_LIMIT  # every order enumerated, not one per set
        choices, probabilities = [], []
        for members, probability in self.design.sets:
            order = list(members)
            rng.shuffle(order)
            # one address per mirror: a mirror with several of one family spreads over them by set
            picked = [(candidates[i].name, rng.choice(candidates[i].addresses)) for i in order]
            starts = range(len(order)) if self.exact else (rng.randrange(len(order)),)
            for start in starts:
                rotated = picked[start:] + picked[:start]
                addresses = tuple(a for _, a in rotated)
                wire = b"".join(address_record(rtype, a, ttl) for a in addresses)
                choices.append(Variant(tuple(n for n, _ in rotated), addresses, wire))
                probabilities.append(float(probability) / len(starts))
        self.choices = tuple(choices)
        self.cumulative = list(accumulate(probabilities))
        self.total = self.cumulative[-1]  # random() * total < total = the last bound: always an index

    def all(self) -> Iterator[Variant]:
        yield from self.choices

    def pick(self, rng: Random) -> Variant:
        return self.choices[bisect_right(self.cumulative, rng.random() * self.total)]
