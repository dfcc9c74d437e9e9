"""The answer-set design: exact first-address shares for any weights, sizes as large as the weights allow."""
from __future__ import annotations

import random
import time
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from dnsbalance.configuration.model import DEFAULT_REGION
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import Candidate, Pool
from dnsbalance.ranking.answersets import delivered_shares, design
from dnsbalance.ranking.variants import Variants

weights_lists = st.lists(st.integers(min_value=0, max_value=10000), min_size=1, max_size=24).filter(any)


def shares(weights: list[int]) -> tuple[Fraction, ...]:
    return tuple(Fraction(w, sum(weights)) for w in weights)


@settings(max_examples=300, deadline=None)
@given(weights=weights_lists, answers=st.integers(1, 8), seed=st.integers())
def test_sets_give_the_weight_shares_exactly(weights: list[int], answers: int, seed: int) -> None:
    result = design(weights, answers, 1, random.Random(seed))
    assert result.exact and result.delivered == shares(weights)
    assert result.first_shares() == shares(weights)  # uniform order within each set
    assert sum(p for _, p in result.sets) == 1 and all(p > 0 for _, p in result.sets)
    live = sum(1 for w in weights if w > 0)
    for members, _ in result.sets:
        assert len(set(members)) == len(members) <= min(answers, live)
        assert all(weights[i] > 0 for i in members)  # weight 0 (drained) never
    # As many with a fallback address as possible: P(size >= 2) = min(1, 2 (1 - largest share)).
    if min(answers, live) >= 2:
        fallback = sum(p for k, p in result.sizes.items() if k >= 2)
        assert fallback == min(Fraction(1), 2 * (1 - max(shares(weights))))
    # Full answers whenever no share is above 1/answers.
    if max(shares(weights)) <= Fraction(1, min(answers, live)):
        assert result.sizes == {min(answers, live): 1}


@settings(max_examples=300, deadline=None)
@given(weights=weights_lists, answers=st.integers(1, 8), minimum=st.integers(1, 8), seed=st.integers())
def test_minimum_caps_shares_and_sets_deliver_them(weights: list[int], answers: int, minimum: int,
                                                   seed: int) -> None:
    minimum = min(minimum, answers)
    result = design(weights, answers, minimum, random.Random(seed))
    live = sum(1 for w in weights if w > 0)
    floor = min(minimum, live)
    assert result.first_shares() == result.delivered
    assert sum(result.delivered) == 1
    assert all(len(members) >= floor for members, _ in result.sets)
    assert max(result.delivered) <= Fraction(1, floor)
    configured = shares(weights)
    if max(configured) <= Fraction(1, floor):
        assert result.exact  # the minimum bends nothing it need not
    else:
        assert not result.exact
        # capped mirrors lose, the others gain in proportion (their ratios kept)
        kept = [(c, d) for c, d in zip(configured, result.delivered) if c and d < Fraction(1, floor)]
        assert len({d / c for c, d in kept}) <= 1


@settings(max_examples=100, deadline=None)
@given(weights=st.lists(st.integers(1, 10000), min_size=1, max_size=8), answers=st.integers(1, 5),
       minimum=st.integers(1, 5), seed=st.integers())
def test_variants_first_names_follow_the_delivered_shares(weights: list[int], answers: int, minimum: int,
                                                           seed: int) -> None:
    pool = Pool(DEFAULT_REGION, tuple(Candidate(f"m{i}", w, (f"192.0.2.{i}", f"192.0.3.{i}"))
                                      for i, w in enumerate(weights)))
    variants = Variants(pool, RType.A, answers, 60, random.Random(seed), min(minimum, answers))
    assert variants.exact
    first: dict[str, float] = {}
    previous = 0.0
    for variant, bound in zip(variants.choices, variants.cumulative):
        first[variant.names[0]] = first.get(variant.names[0], 0.0) + bound - previous
        previous = bound
        assert len(variant.addresses) == len(variant.names)  # one address per mirror
        assert len(variant.wire) == 16 * len(variant.addresses)
    for i, share in enumerate(variants.design.delivered):
        assert abs(first.get(f"m{i}", 0.0) - float(share)) < 1e-9


def test_the_issue_example() -> None:
    # 60/25/10/5: four answers in five carry two addresses; the 60 alone in the fifth.
    result = design([6000, 2500, 1000, 500], 4)
    assert result.sizes == {1: Fraction(1, 5), 2: Fraction(4, 5)}
    assert result.expected_size == Fraction(9, 5)
    # at least 2 addresses: the 5% mirror gets 6.25% (shares capped at 1/2, the others scaled by 0.4/0.4)
    forced = design([6000, 2500, 1000, 500], 4, 2)
    assert forced.delivered == (Fraction(1, 2), Fraction(5, 16), Fraction(1, 8), Fraction(1, 16))
    assert forced.sizes == {2: 1}


def test_equal_weights_fill_every_answer() -> None:
    assert design([1, 1, 1, 1, 1, 1], 4).sizes == {4: 1}
    assert design([7], 4).sizes == {1: 1}


@settings(max_examples=300, deadline=None)
@given(weights=weights_lists, answers=st.integers(1, 8), minimum=st.integers(1, 8))
def test_delivered_shares_alone_are_the_designs(weights: list[int], answers: int, minimum: int) -> None:
    """What `check` reports of every pool (step 1 alone) is what the full design delivers."""
    full = design(weights, answers, minimum)
    alone = delivered_shares(weights, answers, minimum)
    assert (alone.configured, alone.delivered, alone.minimum, alone.exact) == (
        full.configured, full.delivered, full.minimum, full.exact)


def test_big_pools_stay_exact_and_quick() -> None:
    """Integers over one denominator (not a Fraction per operation): a 1,000-mirror pool with awkward
    weights and 8 answers designs in well under a CPU second (0.12 s; 2.4 s in Fractions), every share exact."""
    weights = [(i * 7919) % 9973 + 1 for i in range(1000)] + [9999, 9998, 1]
    started = time.process_time()  # CPU time: a busy machine's wait for a core is not the design's
    result = design(weights, 8, 3, random.Random(4))
    assert time.process_time() - started < 1.0
    assert result.first_shares() == result.delivered and sum(p for _, p in result.sets) == 1
