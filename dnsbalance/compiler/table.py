"""A table compiled to wire: the zone's fixed records, and the weighted answer sets of every pool, made once
per table generation (in the supervisor's build, before answerers are forked) and read by both answer paths.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

from dnsbalance.compiler.answers import AnswerSets
from dnsbalance.compiler.signatures import ZoneSignatures
from dnsbalance.compiler.zone import CompiledZone
from dnsbalance.dnssec.signer import Signer
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.pool import Pool
from dnsbalance.ranking.variants import Variants
from dnsbalance.sealed import Sealed


class CompiledTable(Sealed):
    __slots__ = ("answer_cache", "signatures", "table", "zone")

    def __init__(self, table: ActiveTable) -> None:
        self.table = table
        self.zone = CompiledZone(table.zone, table.names)
        # Answer sets compiled so far, by the variants they are made of (shared by identical pools, and
        # by the next table for the pools it leaves unchanged): a cache, the table's meaning never changes.
        self.answer_cache: dict[Variants, AnswerSets] = {}
        # DNSSEC: set once by sign() in the supervisor's build when the zone is signed; None: unsigned.
        self.signatures: ZoneSignatures | None = None

    def answers(self, pool: Pool, rtype: RType) -> AnswerSets:
        """The pool's answer sets in wire format (compiled now if precompute() has not)."""
        variants = self.table.variants(pool, rtype)
        found = self.answer_cache.get(variants)
        if found is None:
            found = self.answer_cache[variants] = AnswerSets(variants)
        return found

    def precompute(self, inherit: CompiledTable | None = None, deadline: float | None = None) -> int:
        """Every pool's values (ranking) and wire now, reusing `inherit`'s for pools with the same content,
        so that answering processes never compute one under a query. Returns how many pools' values or wire
        were made now (values the status page already computed in this process still lack their wire, which
        answerers forked before would each compile for themselves). With a `deadline` (time.monotonic()),
        stops there; the rest stays lazy."""
        fresh = self.table.precompute(inherit.table if inherit is not None else None, deadline)
        inherited = inherit.answer_cache if inherit is not None else {}
        compiled = 0
        for pool, rtype in self.table.address_pools():
            if deadline is not None and time.monotonic() > deadline:
                break
            variants = self.table.variants(pool, rtype) if self.table.has_variants(pool) else None
            if variants is None or variants in self.answer_cache:
                continue
            made = inherited.get(variants)
            if made is None:
                made = AnswerSets(variants)
                compiled += 1
            self.answer_cache[variants] = made
        return max(fresh, compiled)

    def address_answers(self, inherit: CompiledTable | None = None) -> Iterator[tuple[tuple[str, RType], AnswerSets]]:
        """Every A and AAAA pool's answers by (owner name, type), each compiled when it is reached, or taken with
        its values from `inherit` where that has a pool of the same content. The signed build walks these: the
        signing threads sign the sets already asked for while the next pools are compiled."""
        inherited = inherit.answer_cache if inherit is not None else {}
        with self.table.inheriting(inherit.table if inherit is not None else None):
            for _, tier in self.table.labelled_tiers():
                for pools in (tier.usable, tier.fail_open):
                    for (name, rtype), pool in pools.items():
                        if rtype in (RType.A, RType.AAAA):
                            variants = self.table.variants(pool, rtype)
                            found = self.answer_cache.get(variants)
                            if found is None:
                                found = self.answer_cache[variants] = inherited.get(variants) or AnswerSets(variants)
                            yield (name, rtype), found

    def sign(self, signer: Signer, previous: CompiledTable | None = None) -> ZoneSignatures:
        """Every authoritative RRset signed, every pool's answers compiled on the way (address_answers): the
        unchanged pools' values, wire and signed sets taken from `previous`, the signer's signatures of the same
        content and window reused. The supervisor calls this before answerers fork."""
        found = self.signatures
        if found is not None:
            return found
        found = ZoneSignatures(self.table, signer, self.address_answers(previous),
                               previous.signatures if previous is not None else None)
        object.__setattr__(self, "signatures", found)  # set once: `signatures` is read-only from here on
        return found


def compiled(table: ActiveTable) -> CompiledTable:
    """The table's compiled form, kept in the table's caches (made here on first use: tests, explain)."""
    caches = table.caches
    if caches.compiled is None:
        caches.compiled = CompiledTable(table)
    found = caches.compiled
    assert isinstance(found, CompiledTable)
    return found
