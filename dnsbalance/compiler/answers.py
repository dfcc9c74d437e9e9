"""The weighted answer sets of one pool in wire format: every variant's records back to back (owner a pointer
to the question), compiled once per pool content from ranking/variants.py's values and shared by every
table that has the same pool.

Each answer set has a place for its signature: the DNSSEC issue presigns every set once per table
generation (rotations of a set share one signature, since a signature covers the canonical order), and
a query then picks a variant and its set's signature, with no cryptography on the query path.
"""
from __future__ import annotations

from bisect import bisect_right
from random import Random

from dnsbalance.protocol.renderer import address_record
from dnsbalance.ranking.variants import Variants


class AnswerSets:
    __slots__ = ("cumulative", "record", "signatures", "sizes", "starts", "total", "variants", "wire")

    def __init__(self, variants: Variants) -> None:
        self.variants = variants
        rtype, ttl, candidates, picks = variants.rtype, variants.ttl, variants.candidates, variants.picks
        records = [address_record(rtype, candidates[member].addresses[picks[i]], ttl)
                   for i, member in enumerate(variants.members)]
        self.wire = b"".join(records)
        self.record = len(records[0]) if records else 0  # every record of a pool has one size
        # the variants' own buffers: the query path reads them here, one attribute away
        self.starts, self.cumulative, self.total, self.sizes = (variants.starts, variants.cumulative,
                                                                variants.total, variants.sizes)
        # RRSIG records per answer set (variants.sets maps a variant to its set), in wire format; None:
        # unsigned. Filled by the signing step of a table's build (issue 25), never on the query path.
        self.signatures: tuple[bytes, ...] | None = None

    def __len__(self) -> int:
        return len(self.starts) - 1

    def pick_index(self, rng: Random) -> int:
        return bisect_right(self.cumulative, rng.random() * self.total)

    def wire_at(self, index: int) -> bytes:
        record = self.record
        return self.wire[self.starts[index] * record : self.starts[index + 1] * record]

    def count_at(self, index: int) -> int:
        return self.starts[index + 1] - self.starts[index]

    def names_at(self, index: int) -> tuple[str, ...]:
        """The mirrors of one variant, in order (the counters read them)."""
        return self.variants.names_at(index)

    def signature_at(self, index: int) -> bytes | None:
        signatures = self.signatures
        return signatures[self.variants.sets[index]] if signatures is not None else None
