"""Which sets of mirrors an A/AAAA answer carries, and how often: shares that survive any reordering.

Recursive resolvers reorder address records (unbound's rrset-roundrobin, BIND's random order, glibc's
sorting), and clients connect to the first address they end up with. If the order inside an answer is
uniformly random, a mirror's share of first addresses is

    share(i) = sum over sizes k of P(size k) * P(i in the answer | size k) / k

whatever the resolver does to the order. So the weights are carried by the distribution of answer *sets*,
and the order is only made uniform (ranking/variants.py enumerates the rotations of every set).

The design, in exact rational arithmetic (weights are integers; the per-mirror steps on integers over one
common denominator, see Scaled), in four steps:

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

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from random import Random

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


@dataclass(frozen=True)
class Delivered:
    """Step 1 alone: the first-address shares a pool's clients get, without the sets (what `check` reports
    of every pool, at a fraction of a design's cost)."""

    configured: tuple[Fraction, ...]
    delivered: tuple[Fraction, ...]
    minimum: int

    @property
    def exact(self) -> bool:
        return self.delivered == self.configured


def delivered_shares(weights: Sequence[int], answers: int, minimum: int = 1) -> Delivered:
    """The shares design() delivers for these weights, and the minimum it applies."""
    total = sum(w for w in weights if w > 0)
    configured = tuple(Fraction(max(w, 0), total) if total else ZERO for w in weights)
    live = [i for i, w in enumerate(weights) if w > 0]
    if not live:
        return Delivered(configured, configured, 0)
    low = max(1, min(minimum, answers, len(live)))
    if low == 1:  # one address may carry any share: nothing is capped
        return Delivered(configured, configured, low)
    shares = _capped(weights, live, low)
    return Delivered(configured, tuple(Fraction(n, shares.denominator) for n in shares.numerators), low)


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
    shares = _capped(weights, live, low)
    delivered = tuple(Fraction(shares.numerators[i], shares.denominator) for i in range(len(weights)))
    sizes = _sizes(sorted((shares.numerators[i] for i in live), reverse=True), shares.denominator, low, largest)
    columns, scale = _fill(shares, live, sizes)
    order = list(live)
    if rng is not None:
        rng.shuffle(order)
    found: dict[tuple[int, ...], int] = {}  # members -> probability, over `scale`
    for k, column in columns.items():
        for members, probability in _systematic(column, order, k):
            found[members] = found.get(members, 0) + probability
    _check_shares(found, shares, scale, largest, weights)
    sets = tuple((members, Fraction(p, scale))  # most likely first: sorted on the integers, cheaper
                 for members, p in sorted(found.items(), key=lambda item: (-item[1], item[0])))
    return Design(configured, delivered, {k: p for k, p in sorted(sizes.items()) if p}, sets, low)


class Scaled:
    """Shares as integers over one common denominator: the per-mirror arithmetic of steps 1, 3 and 4 is on
    integers (a Fraction operation costs a gcd and an object; a design made tens of thousands of them, which
    made `check` on 100,000 names six times slower), still exact. Dividing by c multiplies every numerator
    and the denominator by what c lacks (rescale)."""

    __slots__ = ("denominator", "numerators")

    def __init__(self, numerators: list[int], denominator: int) -> None:
        self.numerators = numerators
        self.denominator = denominator


def _capped(weights: Sequence[int], live: list[int], minimum: int) -> Scaled:
    """Step 1: no share above 1/minimum; what the capped mirrors lose goes to the others in proportion.
    A share w/W scaled to (m - c)/m of what the rest have is above 1/m iff w (m - c) > rest weight."""
    capped: set[int] = set()
    while True:
        rest = [i for i in live if i not in capped]
        rest_total = sum(weights[i] for i in rest)
        over = {i for i in rest if weights[i] * (minimum - len(capped)) > rest_total} if rest_total else set()
        if not over:
            break
        capped |= over
    if not rest_total:  # every live mirror capped: each has 1/minimum
        return Scaled([1 if i in capped else 0 for i in range(len(weights))], minimum)
    left = minimum - len(capped)
    return Scaled([rest_total if i in capped else weights[i] * left if i in live else 0
                   for i in range(len(weights))], minimum * rest_total)


def _sizes(shares: list[int], denominator: int, minimum: int, largest: int) -> dict[int, Fraction]:
    """Step 2: every answer starts at `minimum` addresses; for k = minimum+1 .. largest, move as much
    probability from size k-1 to size k as the shares allow (lexicographic: more answers with a
    fallback address first). `shares`: numerators over `denominator` (a multiple of `minimum`), sorted
    largest first; only the t < largest largest constrain. Integers over a denominator refined as needed."""
    scale = denominator
    top = [0] * largest  # top[t]: the t largest shares together
    for t in range(1, largest):
        top[t] = top[t - 1] + shares[t - 1]
    sizes = {minimum: scale}
    # room[t] = E[min(1, t/size)] under the current sizes; must stay >= top[t]
    room = [0] + [scale if t >= minimum else scale // minimum * t for t in range(1, largest)]
    for k in range(minimum + 1, largest + 1):
        # moving p from size k-1 to k takes p t / (k (k-1)) from room[t], t < k (for t >= k both sizes
        # count fully): the most that can move is the least of sizes[k-1] and (room[t] - top[t]) k (k-1) / t
        most, by = sizes[k - 1], 1
        for t in range(1, k):
            slack = (room[t] - top[t]) * k * (k - 1)
            if slack * by < most * t:
                most, by = slack, t
        if most <= 0:
            break
        # integers again: the move a whole number, divisible by k (k-1) so room[t] stays whole
        factor = by // gcd(most, by)
        movable = most * factor // by
        step = k * (k - 1)
        factor *= step // gcd(movable, step)
        movable = most * factor // by
        if factor > 1:
            scale *= factor
            top = [value * factor for value in top]
            room = [value * factor for value in room]
            sizes = {size: value * factor for size, value in sizes.items()}
        sizes[k - 1] -= movable
        sizes[k] = movable
        for t in range(1, k):
            room[t] -= movable // step * t
    return {size: Fraction(value, scale) for size, value in sizes.items()}


def _fill(shares: Scaled, live: list[int], sizes: dict[int, Fraction]) -> tuple[dict[int, dict[int, int]], int]:
    """Step 3: x[k][i], mirror i's part of the first addresses of size-k answers: sum over k is its
    share, sum over i is P(size k), and no x[k][i] exceeds P(size k)/k. Returned as integers over the
    common denominator, also returned."""
    used = sorted((k for k, p in sizes.items() if p), reverse=True)
    scale = shares.denominator
    for k in used:  # P(size k) / k an integer over the denominator
        p = sizes[k]
        scale = _lcm(scale, p.denominator * k // gcd(p.numerator, k))
    factor = scale // shares.denominator
    left = {i: shares.numerators[i] * factor for i in live}
    columns: dict[int, dict[int, int]] = {}
    for k in used:
        p = sizes[k]
        demand = p.numerator * (scale // p.denominator)
        cap = demand // k
        level, divisor = _level(sorted(left.values()), cap, demand)
        if divisor > 1:  # the level falls between integers: refine the denominator
            scale *= divisor
            demand, cap = demand * divisor, cap * divisor
            left = {i: r * divisor for i, r in left.items()}
            columns = {j: {i: x * divisor for i, x in column.items()} for j, column in columns.items()}
        column = {i: min(cap, max(0, r - level)) for i, r in left.items()}
        columns[k] = column
        for i, x in column.items():
            left[i] -= x
    if any(left.values()):  # cannot happen for feasible sizes
        raise AssertionError("answer sizes cannot carry the shares")
    return columns, scale


def _level(remaining: list[int], cap: int, demand: int) -> tuple[int, int]:
    """The level theta with sum(min(cap, max(0, r - theta))) == demand (taken from the top, evened), as
    (n, d): theta = n / d, in units of the common denominator times d. `remaining` sorted."""
    def taken(theta: int) -> int:
        return sum(min(cap, max(0, r - theta)) for r in remaining)

    points = sorted({0} | {p for r in remaining for p in (r, r - cap) if p > 0})
    if taken(0) < demand:
        raise AssertionError("answer sizes cannot carry the shares")
    # taken() is piecewise linear and non-increasing between these points: the first point where it is at
    # most the demand (by bisection), then interpolate on the segment before it.
    low, high = 0, len(points) - 1
    if taken(points[high]) > demand:
        return points[high], 1
    while low < high:
        middle = (low + high) // 2
        if taken(points[middle]) <= demand:
            high = middle
        else:
            low = middle + 1
    if low == 0:
        return points[0], 1
    previous, point = points[low - 1], points[low]
    before, after = taken(previous), taken(point)
    if before == after:
        return previous, 1
    # on the segment taken() falls by `slope` (the mirrors between their cap and their share) per unit
    slope = (before - after) // (point - previous)
    divisor = slope // gcd(before - demand, slope)
    return previous * divisor + (before - demand) * divisor // slope, divisor


def _systematic(column: dict[int, int], order: list[int], k: int) -> list[tuple[tuple[int, ...], int]]:
    """Step 4: every set systematic sampling can give, with its probability (over the denominator of
    `column`). Positions are in units of 1/P(size k): inclusion probability pi_i = k x_i / P(size k)."""
    inclusion = [(i, k * column[i]) for i in order if column.get(i)]
    unit = sum(pi for _, pi in inclusion) // k  # P(size k), over the column's denominator
    ends, position = [], 0
    for _, pi in inclusion:
        position += pi
        ends.append(position)
    cuts = sorted({0} | {end % unit for end in ends})
    out = []
    for low, high in zip(cuts, [*cuts[1:], unit]):
        middle = low + high  # twice the midpoint u: compared with twice the ends
        members, at = [], 0
        for j in range(k):
            while 2 * ends[at] <= middle + 2 * j * unit:
                at += 1
            members.append(inclusion[at][0])
        if len(set(members)) != k:  # cannot happen: every pi <= 1
            raise AssertionError("systematic sampling drew a mirror twice")
        out.append((tuple(sorted(members)), high - low))
    return out


def _check_shares(found: dict[tuple[int, ...], int], shares: Scaled, scale: int, largest: int,
                  weights: Sequence[int]) -> None:
    """The sets give every mirror its delivered share of first addresses (uniform order inside each set);
    cannot fail if the algebra above is right. In integers: times lcm(1..largest) over `scale`."""
    sizes = 1
    for k in range(2, largest + 1):
        sizes = _lcm(sizes, k)
    got = [0] * len(shares.numerators)
    for members, probability in found.items():
        part = probability * (sizes // len(members))
        for i in members:
            got[i] += part
    factor = scale // shares.denominator * sizes
    if any(g != n * factor for g, n in zip(got, shares.numerators)):
        raise AssertionError(f"answer sets miss their shares for weights {list(weights)}")


def _lcm(a: int, b: int) -> int:
    return a // gcd(a, b) * b
