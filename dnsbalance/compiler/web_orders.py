"""apt's SRV sets (`_http._tcp.NAME`) for signed answers: a bounded set of ranked orders per pool, each signed
once in the table's build.

Unsigned, each answer writes a weighted random order drawn per query as the priorities 0, 1, 2, ...
(docs/apt-srv.md): as many distinct RRsets as orders of the pool's mirrors, too many to presign. A DO answer
instead picks among one order per mirror of the lowest tier: the order that starts with that mirror, with
probability its weight share (apt's first choice follows the weights exactly, as unsigned), the rest in one
weighted random order drawn from the pool's content (the same in every process and every build that has the
same pool, so a rebuild reuses the signatures), cut where the answer would outgrow apt's 512 bytes as unsigned
answers are. A pool of n mirrors costs n signatures at most.
"""
from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_right
from operator import itemgetter
from random import Random

from dnsbalance.configuration.web_services import apt_fit, srv_record_size
from dnsbalance.protocol.renderer import Name
from dnsbalance.ranking.pool import Candidate, Pool

_KEY = itemgetter(0)  # an order key (u^(1/w), index): by u^(1/w)


def _seed(pool: Pool) -> int:
    content = repr(tuple((c.name, c.weight, c.port, c.tier) for c in pool.candidates))
    return int.from_bytes(hashlib.blake2b(content.encode(), digest_size=8).digest(), "big")


class WebOrders:
    """The ranked orders a signed answer picks from, with their cumulative weights."""

    __slots__ = ("cumulative", "orders", "signatures", "total")

    def __init__(self, pool: Pool, qname: Name = (), parent: Name | None = None) -> None:
        """`qname`, `parent`: the SRV owner's labels and the targets' parent's (`mirror.NAME.<zone>`): each order
        is cut, as unsigned answers are, to the records that fit apt's 512 bytes (web_services.apt_records)."""
        candidates = [c for c in pool.candidates if c.weight > 0]
        lowest = min((c.tier for c in candidates), default=0)
        tiered = any(c.tier != lowest for c in candidates)
        orders: list[tuple[Candidate, ...]] = []
        cumulative = array("d")
        total = 0.0
        sizes = [srv_record_size((c.name.encode(), *parent)) for c in candidates] if parent is not None else []
        inverse = [1.0 / c.weight for c in candidates]
        rng = Random(_seed(pool))  # one per pool, drawn in the pool's order: the same orders for the same content
        for at, first in enumerate(candidates):
            if first.tier != lowest:
                continue
            # the rest in a weighted random order without replacement: each by the key u^(1/w), largest first
            # (Efraimidis and Spirakis), the distribution of draw.draw's pick after pick, at a sort's cost
            keyed = sorted([(rng.random() ** inverse[i], i) for i in range(len(candidates)) if i != at],
                           key=_KEY, reverse=True)  # (stable: equal keys stay in the pool's order)
            picked = [at, *(i for _, i in keyed)]
            if tiered:  # stable: the first stays first, the weighted order holds per tier
                picked.sort(key=lambda i: candidates[i].tier)
            if parent is not None:
                del picked[apt_fit(qname, [sizes[i] for i in picked]) :]
            orders.append(tuple(candidates[i] for i in picked))
            total += first.weight
            cumulative.append(total)
        self.orders = tuple(orders)
        self.cumulative, self.total = cumulative, total
        self.signatures: tuple[bytes, ...] = ()  # one RRSIG RDATA per order, set by the signing build

    def pick(self, rng: Random) -> int:
        return bisect_right(self.cumulative, rng.random() * self.total) if self.orders else -1
