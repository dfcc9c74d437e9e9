"""Which sets of mirrors an A/AAAA answer carries, and how often: shares that survive any reordering.

Recursive resolvers reorder address records (unbound's rrset-roundrobin, BIND's random order, glibc's
sorting), and clients connect to the first address they end up with. If the order inside an answer is
uniformly random, a mirror's share of first addresses is

    share(i) = sum over sizes k of P(size k) * P(i in the answer | size k) / k

whatever the resolver does to the order. So the weights are carried by the distribution of answer *sets*,
and the order is only made uniform (ranking/variants.py enumerates the rotations of every set).

The design, in exact rational arithmetic (weights are integers), in four steps:

1. Delivered shares. With `minimum` addresses in every answer a mirror can have at most 1/minimum of the
   first addresses (it is in every answer at best). Mirrors whose weight share is above that are capped at
   1/minimum and the others scaled up in proportion (water-filling); with minimum 1 (the default) nothing
   is capped and the delivered shares are the weight shares exactly.
2. Answer sizes. A distribution of sizes lam(k) can carry shares s (sorted, largest first) exactly if and
   only if, for every t, the t largest shares together are at most E[min(1, t/size)] (a max-flow/min-cut
   argument on mirrors x sizes, where a mirror can have at most lam(k)/k of the first addresses of size-k
   answers). Among the feasible size distributions the one chosen makes P(size >= 2) as large as possible,
   then P(size >= 3), and so on up to `answers`: failover for as many clients as possible first, then more
   addresses. For 60/25/10/5 that is two addresses in four answers of five, one (the 60) in the fifth.
3. Who fills which size: a transportation problem (supplies s_i, demands lam(k), each mirror at most
   lam(k)/k in size k), solved one size at a time, largest first, by taking from the mirrors with the most
   left and levelling them (capped water-filling keeps what is left as even as possible, so the rest
   stays feasible).
4. The sets of one size k: systematic sampling. Inclusion probabilities pi_i = k * x_ik / lam(k) <= 1 are
   laid end to end on [0, k) in a shuffled order; points u, u+1, ..., u+k-1 for u uniform in [0, 1) fall in
   k distinct mirrors. The breakpoints of u cut [0, 1) into at most n intervals, each one set with its
   exact probability, so a pool of n mirrors has at most n sets per size, and every pool is exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from random import Random
from typing import Sequence

ZERO, ONE = Fraction(0), Fraction(1)


@dataclass(frozen=True)
class Design:
    """The answer-set distribution of one pool. Indices are positions in the pool's candidates."""

    configured: tuple[Fraction, ...]  # weight shares
    delivered: tuple[Fraction, ...]  # first-address shares the design gives at clients
    sizes: dict[int, Fraction]  # answer size -> probability
    sets: tuple[tuple[tuple[int, ...], Fraction], ...]  # (members, probability), most likely first
    minimum: int  # the minimum actually applied (at most the number of mirrors)

    @property
    def exact(self) -> bool:
        """The configured shares are delivered: the minimum did not force anything."""
        return self.delivered == self.configured

    @property
    def expected_size(self) -> Fraction:
        return sum((k * p for k, p in self.sizes.items()), ZERO)

    def first_shares(self) -> tuple[Fraction, ...]:
        """Shares of first addresses computed back from the sets (uniform order inside each)."""
        shares = [ZERO] * len(self.configured)
        for members, probability in self.sets:
            for i in members:
                shares[i] += probability / len(members)
        return tuple(shares)


def design(weights: Sequence[int], answers: int, minimum: int = 1, rng: Random | None = None) -> Design:
    """The answer sets for these weights (0 = never answered), at most `answers` addresses each and at
    least `minimum` (capped at the number of mirrors). `rng` shuffles the systematic order so that which
    mirrors share answers varies from table to table; without it the pool's order is used."""
    total = sum(w for w in weights if w > 0)
    configured = tuple(Fraction(max(w, 0), total) if total else ZERO for w in weights)
    live = [i for i, w in enumerate(weights) if w > 0]
    if not live:
        return Design(configured, configured, {}, (), 0)
    largest = max(1, min(answers, len(live)))
    low = max(1, min(minimum, largest))
    delivered = _capped(configured, live, low)
    sizes = _sizes(sorted((delivered[i] for i in live), reverse=True), low, largest)
    columns = _fill(delivered, live, sizes)
    order = list(live)
    if rng is not None:
        rng.shuffle(order)
    found: dict[tuple[int, ...], Fraction] = {}
    for k, column in columns.items():
        for members, probability in _systematic(column, order, k, sizes[k]):
            found[members] = found.get(members, ZERO) + probability
    sets = tuple(sorted(found.items(), key=lambda item: (-item[1], item[0])))
    result = Design(configured, delivered, {k: p for k, p in sorted(sizes.items()) if p}, sets, low)
    if result.first_shares() != delivered:  # cannot happen if the algebra above is right
        raise AssertionError(f"answer sets miss their shares for weights {list(weights)}")
    return result


def _capped(shares: tuple[Fraction, ...], live: list[int], minimum: int) -> tuple[Fraction, ...]:
    """Step 1: no share above 1/minimum; what the capped mirrors lose goes to the others in proportion."""
    limit = Fraction(1, minimum)
    capped: set[int] = set()
    while True:
        rest = [i for i in live if i not in capped]
        left = ONE - limit * len(capped)
        rest_total = sum((shares[i] for i in rest), ZERO)
        scale = left / rest_total if rest_total else ZERO
        over = {i for i in rest if shares[i] * scale > limit}
        if not over:
            break
        capped |= over
    return tuple(limit if i in capped else shares[i] * scale if i in live else ZERO for i in range(len(shares)))


def _sizes(shares: list[Fraction], minimum: int, largest: int) -> dict[int, Fraction]:
    """Step 2: every answer starts at `minimum` addresses; for k = minimum+1 .. largest, move as much
    probability from size k-1 to size k as the shares allow (lexicographic: more answers with a
    fallback address first). `shares` sorted largest first."""
    n = len(shares)
    top = [ZERO] * (n + 1)  # top[t]: the t largest shares together
    for t, share in enumerate(shares, 1):
        top[t] = top[t - 1] + share
    sizes = {minimum: ONE}
    # room[t] = E[min(1, t/size)] under the current sizes; must stay >= top[t]
    room = [ZERO] + [min(ONE, Fraction(t, minimum)) for t in range(1, n + 1)]
    for k in range(minimum + 1, largest + 1):
        movable = sizes[k - 1]
        for t in range(1, k):  # for t >= k both sizes count fully: no constraint
            drop = min(ONE, Fraction(t, k - 1)) - Fraction(t, k)
            movable = min(movable, (room[t] - top[t]) / drop)
        if movable <= 0:
            break
        sizes[k - 1] -= movable
        sizes[k] = movable
        for t in range(1, k):
            room[t] -= movable * (min(ONE, Fraction(t, k - 1)) - Fraction(t, k))
    return sizes


def _fill(shares: tuple[Fraction, ...], live: list[int], sizes: dict[int, Fraction]) -> dict[int, dict[int, Fraction]]:
    """Step 3: x[k][i], mirror i's part of the first addresses of size-k answers: sum over k is its
    share, sum over i is P(size k), and no x[k][i] exceeds P(size k)/k."""
    left = {i: shares[i] for i in live}
    columns: dict[int, dict[int, Fraction]] = {}
    for k in sorted((k for k, p in sizes.items() if p), reverse=True):
        cap, demand = sizes[k] / k, sizes[k]
        level = _level(list(left.values()), cap, demand)
        column = {i: min(cap, max(ZERO, r - level)) for i, r in left.items()}
        columns[k] = column
        for i, x in column.items():
            left[i] -= x
    if any(left.values()):  # cannot happen for feasible sizes
        raise AssertionError("answer sizes cannot carry the shares")
    return columns


def _level(remaining: list[Fraction], cap: Fraction, demand: Fraction) -> Fraction:
    """The level theta with sum(min(cap, max(0, r - theta))) == demand (taken from the top, evened)."""
    def taken(theta: Fraction) -> Fraction:
        return sum((min(cap, max(ZERO, r - theta)) for r in remaining), ZERO)

    points = sorted({ZERO} | {p for r in remaining for p in (r, r - cap) if p > 0})
    if taken(ZERO) < demand:
        raise AssertionError("answer sizes cannot carry the shares")
    # taken() is piecewise linear and non-increasing between these points: find the segment, interpolate.
    previous, before = points[0], taken(points[0])
    for point in points[1:]:
        after = taken(point)
        if after <= demand:
            if before == after:
                return previous
            return previous + (before - demand) / (before - after) * (point - previous)
        previous, before = point, after
    return previous


def _systematic(column: dict[int, Fraction], order: list[int], k: int,
                probability: Fraction) -> list[tuple[tuple[int, ...], Fraction]]:
    """Step 4: every set systematic sampling can give, with its probability times `probability`."""
    inclusion = [(i, k * column[i] / probability) for i in order if column.get(i)]
    ends, position = [], ZERO
    for _, pi in inclusion:
        position += pi
        ends.append(position)
    cuts = sorted({ZERO} | {end - (end.numerator // end.denominator) for end in ends})
    out = []
    for low, high in zip(cuts, [*cuts[1:], ONE]):
        u = (low + high) / 2
        members, at = [], 0
        for j in range(k):
            while ends[at] <= u + j:
                at += 1
            members.append(inclusion[at][0])
        if len(set(members)) != k:  # cannot happen: every pi <= 1
            raise AssertionError("systematic sampling drew a mirror twice")
        out.append((tuple(sorted(members)), probability * (high - low)))
    return out
