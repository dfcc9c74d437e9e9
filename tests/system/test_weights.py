"""Weighted draws: the first address follows the weights (chi-square), drained never, no repeats."""
from __future__ import annotations

import random
import socket
from collections import Counter

import dns.edns
import dns.message
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsbalance.ranking.draw import draw
from tests.chisquare import chi2, chi2_critical
from tests.harness import Server

# JP table of the test zone: priority -> weight = 10000 - priority
JP_WEIGHTS = {"192.0.2.1": 9000, "192.0.2.2": 6000, "192.0.2.3": 3000, "192.0.2.4": 1000}


def first_addresses(server: Server, count: int) -> tuple[Counter, set[str], bool]:
    """Send `count` queries from a JP client subnet; first addresses, all addresses, any repeat seen."""
    option = dns.edns.ECSOption("1.0.16.0", 24)
    firsts: Counter = Counter()
    everything: set[str] = set()
    repeated = False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        for ident in range(count):
            query = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0, options=[option],
                                           id=ident & 0xFFFF)
            sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
            reply = dns.message.from_wire(sock.recv(4096))
            assert reply.id == ident & 0xFFFF
            got = [rr.address for rr in reply.answer[0]]
            repeated |= len(got) != len(set(got))
            firsts[got[0]] += 1
            everything.update(got)
    return firsts, everything, repeated


def test_first_address_follows_weights_over_6000_answers(shared_server: Server) -> None:
    firsts, everything, repeated = first_addresses(shared_server, 6000)
    df = len(JP_WEIGHTS) - 1
    statistic = chi2(firsts, JP_WEIGHTS)
    assert statistic < chi2_critical(df), (statistic, firsts)
    # The same counts are far from what unweighted (uniform) draws would give: the test has teeth.
    assert chi2(firsts, {k: 1 for k in JP_WEIGHTS}) > 10 * chi2_critical(df)
    assert "192.0.2.5" not in everything  # drained (priority 10000)
    assert not repeated


def test_chi2_critical_matches_tables() -> None:
    # Published chi-square 0.999 quantiles: df=3 -> 16.27, df=10 -> 29.59 (z for 0.001 is 3.090)
    assert abs(chi2_critical(3, 3.090) - 16.27) < 0.3
    assert abs(chi2_critical(10, 3.090) - 29.59) < 0.3


weights_lists = st.lists(st.integers(min_value=0, max_value=10000), min_size=1, max_size=40)


@given(weights=weights_lists, count=st.integers(min_value=0, max_value=50), seed=st.integers())
def test_draw_distinct_positive_and_complete(weights: list[int], count: int, seed: int) -> None:
    items = list(range(len(weights)))
    picked = draw(items, weights, count, random.Random(seed))
    assert len(picked) == len(set(picked))
    assert all(weights[i] > 0 for i in picked)
    assert len(picked) == min(count, sum(1 for w in weights if w > 0))


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.integers(min_value=100, max_value=10000), min_size=2, max_size=6), seed=st.integers())
def test_draw_first_pick_is_proportional(weights: list[int], seed: int) -> None:
    rng = random.Random(seed)
    n = 20000
    counts = Counter(draw(range(len(weights)), weights, 1, rng)[0] for _ in range(n))
    statistic = chi2(counts, dict(enumerate(weights)))
    # weights >= 100 keep every expected count >= 40, where the chi-square approximation holds
    assert statistic < chi2_critical(len(weights) - 1, z=4.75)  # p ~ 1e-6 per example


def test_small_pools_enumerate_every_order_of_every_answer_set() -> None:
    # Issue 11 changed this contract: answers are sets whose rotations are all enumerated (first addresses
    # exact whatever a resolver does to the order), not the sequential weighted draw's ordered answers.
    from fractions import Fraction

    from dnsbalance.configuration.model import DEFAULT_REGION
    from dnsbalance.protocol.codes import RType
    from dnsbalance.ranking.active import Candidate, Pool
    from dnsbalance.ranking.variants import Variants

    weights = {"a": 9000, "b": 6000, "c": 3000, "d": 1000}
    pool = Pool(DEFAULT_REGION, tuple(Candidate(n, w, (f"192.0.2.{i}",)) for i, (n, w) in enumerate(weights.items())))
    variants = Variants(pool, RType.A, 3, 60, random.Random(1))
    assert variants.exact
    probability = [b - a for a, b in zip([0.0, *variants.cumulative], variants.cumulative)]
    total = sum(weights.values())
    first: Counter = Counter()
    for variant, p in zip(variants.choices, probability):
        first[variant.names[0]] += p
    for name, weight in weights.items():
        assert abs(first[name] - weight / total) < 1e-12
    assert variants.design.first_shares() == tuple(Fraction(w, total) for w in weights.values())
    assert abs(variants.total - 1.0) < 1e-12


def test_big_pools_keep_exact_sets_and_one_order_per_set() -> None:
    # Issue 11 changed this contract: past EXACT_LIMIT ordered answers the sets stay exact (what a client
    # behind a shuffling resolver sees) and each set keeps one random rotation (exact in expectation).
    from dnsbalance.configuration.model import DEFAULT_REGION
    from dnsbalance.protocol.codes import RType
    from dnsbalance.ranking.active import Candidate, Pool
    from dnsbalance.ranking.variants import EXACT_LIMIT, Variants

    rng = random.Random(4)
    weights = {f"m{i}": rng.randint(100, 10000) for i in range(EXACT_LIMIT // 4 + 20)}
    pool = Pool(DEFAULT_REGION, tuple(Candidate(n, w, (f"10.0.{i // 250}.{i % 250}",))
                                      for i, (n, w) in enumerate(weights.items())))
    variants = Variants(pool, RType.A, 4, 60, random.Random(3))
    assert not variants.exact
    picks = [variants.pick(rng) for _ in range(40000)]
    shuffled_firsts = Counter(rng.choice(v.names) for v in picks)  # what a shuffling resolver's client uses
    assert chi2(shuffled_firsts, weights) < chi2_critical(len(weights) - 1)
    assert all(len(set(v.names)) == len(v.names) == 4 for v in picks)
