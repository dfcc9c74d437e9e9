"""What to count for one query: the same record from the fast path (kept with each prepared reply) and the
full path (made by the pipeline's count stage)."""
from __future__ import annotations

from typing import NamedTuple

from dnsbalance.stats.counters import AnswerKey, QueryKey


class Tally(NamedTuple):
    """What to count for one answered query: its (type, rcode, country, continent), whether its client
    subnet located it, and for an answer drawn from a pool the pool's (region, name, type). The fast path
    makes one per prepared reply; the full path's count stage one per query. (A NamedTuple, not a frozen
    dataclass: a random-name flood makes one per query.)"""

    key: QueryKey
    ecs: bool
    answer: AnswerKey | None = None


class Chosen:
    """The mirrors of a full-path answer, shaped like a precomputed variant for the counters."""

    __slots__ = ("names",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def __hash__(self) -> int:
        return hash(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chosen) and other.names == self.names
