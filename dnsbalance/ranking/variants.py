"""Precomputed A/AAAA answers for one pool, so that a query costs a weighted pick, not a draw and a pack.

The answer *sets* and their probabilities come from ranking/answersets.py: every mirror's share of first
addresses equals its (delivered) weight share whatever order a resolver puts the records in, with one
address per mirror (several addresses of one mirror would multiply its share behind a shuffling
resolver). Each set gets a random order, and its rotations are the variants, each with 1/size of the
set's probability, so the order is uniform too: a client that keeps our order (or a resolver that
rotates) sees the same shares. Pools with more than EXACT_LIMIT ordered answers keep one random
rotation per set instead: the sets stay exact, the order is exact in expectation (redrawn whenever the
pool changes). These are values: the compiler (compiler/answers.py) turns them into the wire format both
answer paths serve, so their bytes agree.

Storage is flat on purpose: a big table has about a million variants, and as objects (a Variant, two
tuples and a bytes each) they cost ~500 bytes apiece and are copied page by page into every answering
process that touches their reference counts. Here a pool holds a few buffers whatever its size: where each
variant starts, which mirror each record is and which of its addresses, which answer set each variant is a
rotation of, and the cumulative probabilities. Variant objects are made on demand for the tests and the
status page.
"""
from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from random import Random

from dnsbalance.protocol.codes import RType
from dnsbalance.protocol.renderer import address_record
from dnsbalance.ranking.answersets import Design, design
from dnsbalance.ranking.pool import Pool

# Ordered answers enumerated per pool. A pool has at most (mirrors x sizes used) sets; the rotations of
# 4 mirrors answered 2 to 4 at a time are a few dozen; past this limit, one rotation per set.
EXACT_LIMIT = 256

# What a pool's answers depend on: type, answer size bounds, TTL and its entries (name, weight,
# addresses). Not its region: pools with the same entries in several regions share one Variants.
VariantKey = tuple[RType, int, int, int, tuple[tuple[str, int, tuple[str, ...]], ...]]


class Variant:
    """One precomputed answer, as the full path and the status page see it (made on demand)."""

    __slots__ = ("addresses", "names", "wire")

    def __init__(self, names: tuple[str, ...], addresses: tuple[str, ...], wire: bytes) -> None:
        self.names = names  # mirrors in answer order
        self.addresses = addresses
        self.wire = wire  # the answer records, owner compressed to the question name (compiler/answers.py)


def variant_key(pool: Pool, rtype: RType, answers: int, ttl: int, min_answers: int) -> VariantKey:
    return (rtype, answers, ttl, min_answers, tuple((c.name, c.weight, c.addresses) for c in pool.candidates))


def key_seed(key: VariantKey) -> int:
    """The seed of a pool's draws, from its content alone: the same in every process that builds the same
    table (unlike id() or hash() of strings), and unchanged while the pool is, so a health cycle that
    leaves a pool alone keeps its answers without computing them again."""
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "big")


class Variants:
    __slots__ = ("_minimum", "_pool", "_seed", "answers", "candidates", "cumulative", "delivered", "exact", "members",
                 "names", "picks", "rtype", "sets", "sizes", "starts", "total", "ttl")

    def __init__(self, pool: Pool, rtype: RType, answers: int, ttl: int, rng: Random | int,
                 min_answers: int = 1) -> None:
        seed = rng if isinstance(rng, int) else rng.getrandbits(64)
        rng = Random(seed)
        self.answers, self.rtype, self.ttl = answers, rtype, ttl
        self._pool, self._minimum, self._seed = pool, min_answers, seed
        result = design(pool.weights, answers, min_answers, rng)
        self.candidates = candidates = pool.candidates
        self.names = tuple(c.name for c in candidates)
        self.delivered = tuple(float(share) for share in result.delivered)  # for the status page
        ordered = sum(len(members) for members, _ in result.sets)
        self.exact = ordered <= EXACT_LIMIT  # every order enumerated, not one per set
        starts, members, picks, sets, probabilities = array("I", [0]), array("H"), array("H"), array("I"), array("d")
        for number, (set_members, probability) in enumerate(result.sets):
            order = list(set_members)
            rng.shuffle(order)
            # one address per mirror: a mirror with several of one family spreads over them by set
            picked = [(i, rng.randrange(len(candidates[i].addresses))) for i in order]
            rotations = range(len(order)) if self.exact else (rng.randrange(len(order)),)
            for start in rotations:
                rotated = picked[start:] + picked[:start]
                members.extend(i for i, _ in rotated)
                picks.extend(a for _, a in rotated)
                starts.append(len(members))
                sets.append(number)  # rotations of one set share its signature (DNSSEC: canonical order)
                probabilities.append(float(probability) / len(rotations))
        self.starts, self.members, self.picks, self.sets = starts, members, picks, sets
        self.sizes = tuple(sorted({starts[i + 1] - starts[i] for i in range(len(starts) - 1)}))  # records per answer
        total = 0.0
        cumulative = array("d")
        for p in probabilities:
            total += p
            cumulative.append(total)
        self.cumulative = cumulative
        self.total = total  # random() * total < total = the last bound: always an index

    def __len__(self) -> int:
        return len(self.starts) - 1

    def pick_index(self, rng: Random) -> int:
        return bisect_right(self.cumulative, rng.random() * self.total)

    def count_at(self, index: int) -> int:
        return self.starts[index + 1] - self.starts[index]

    def names_at(self, index: int) -> tuple[str, ...]:
        names = self.names
        return tuple(names[i] for i in self.members[self.starts[index] : self.starts[index + 1]])

    def addresses_at(self, index: int) -> tuple[str, ...]:
        candidates, picks = self.candidates, self.picks
        return tuple(candidates[self.members[i]].addresses[picks[i]]
                     for i in range(self.starts[index], self.starts[index + 1]))

    def variant(self, index: int) -> Variant:
        addresses = self.addresses_at(index)
        return Variant(self.names_at(index), addresses,
                       b"".join(address_record(self.rtype, address, self.ttl) for address in addresses))

    def all(self) -> Iterator[Variant]:
        for index in range(len(self)):
            yield self.variant(index)

    @property
    def choices(self) -> tuple[Variant, ...]:
        return tuple(self.all())

    def pick(self, rng: Random) -> Variant:
        return self.variant(self.pick_index(rng))

    @property
    def design(self) -> Design:
        """The answer-set design, made again (the same draw from the same seed): kept, it would cost more
        memory than the answers themselves, and only `explain` and the share reports read it."""
        return design(self._pool.weights, self.answers, self._minimum, Random(self._seed))
