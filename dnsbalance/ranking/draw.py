"""Weighted random draws without replacement: the first pick follows the weights exactly."""
from __future__ import annotations

from random import Random
from typing import Sequence, TypeVar

T = TypeVar("T")


def draw(items: Sequence[T], weights: Sequence[int], count: int, rng: Random) -> list[T]:
    """Up to `count` distinct items; each pick is proportional to the weights of those not yet picked.

    DNS Balance walked the list with a biased cut-off; here every pick is an exact proportional draw,
    so P(first = i) = w_i / sum(w). Items of weight 0 are never drawn.
    """
    remaining = [(item, weight) for item, weight in zip(items, weights) if weight > 0]
    total = sum(weight for _, weight in remaining)
    picked: list[T] = []
    while remaining and len(picked) < count:
        point = rng.randrange(total)  # integers: no float rounding at the edges
        index = 0
        while point >= remaining[index][1]:
            point -= remaining[index][1]
            index += 1
        item, weight = remaining.pop(index)
        picked.append(item)
        total -= weight
    return picked
