"""The cluster's pure parts in process: the consensus of live vantage points, and how it enters the health policy
(through fall/rise, replacing this prober's own verdict)."""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from types import MappingProxyType

from hypothesis import given
from hypothesis import strategies as st

from dnsbalance.cluster.consensus import decide, externals, needed
from dnsbalance.cluster.member import adopt, offset, read_prefix
from dnsbalance.cluster.shared_reference import encode as encode_reference
from dnsbalance.cluster.view import ClusterView
from dnsbalance.cluster.vote import Vote, encode, parse
from dnsbalance.ops import cluster_section
from dnsbalance.health.checks.base import Judged, Target
from dnsbalance.health.observations import Mode, Observation, Observed
from dnsbalance.health.policy import next_state
from dnsbalance.health.reference import Reference
from dnsbalance.health.settings import PolicySettings, Thresholds
from dnsbalance.health.state import HealthState, MirrorHealth
from dnsbalance.health.verdict import Verdict

KEYS = ("m0", "m1", "m2")


def vote(name: str, down: AbstractSet[str] = frozenset(), out: AbstractSet[str] = frozenset(),
         keys: tuple[str, ...] = KEYS) -> Vote:
    return Vote(name, "d1", 1, frozenset(keys) - set(down), frozenset(down), frozenset(out))


def test_needed_votes_by_quorum_rule() -> None:
    assert [needed(n, "majority") for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert [needed(n, "all") for n in (1, 2, 3)] == [1, 2, 3]
    assert [needed(n, 2) for n in (1, 2, 3, 4)] == [1, 2, 2, 2]  # never more than the live voters


def test_one_of_three_down_stays_in_two_of_three_goes() -> None:
    votes = [vote("a", {"m0", "m1"}), vote("b", {"m1"}), vote("c")]
    decided = decide(votes, "majority")
    assert decided["m0"].up and decided["m0"].down == ("a",)
    assert not decided["m1"].up and decided["m1"].down == ("a", "b") and decided["m1"].needed == 2
    assert decided["m2"].up and decided["m2"].voters == 3
    assert not decide(votes, 1)["m0"].up  # down_quorum 1: any vantage point takes it out
    assert decide(votes, "all")["m1"].up  # all: the third still sees it


def test_a_voter_that_did_not_observe_a_target_does_not_count_for_it() -> None:
    votes = [vote("a", {"new"}, keys=(*KEYS, "new")), vote("b"), vote("c")]
    decided = decide(votes, "majority")
    assert not decided["new"].up and decided["new"].voters == 1  # only a knows it: one voter, one needed


def test_start_decides_on_what_instances_serve_without() -> None:
    votes = [vote("a", out={"m2"}), vote("b", out={"m2"}), vote("c", {"m0"})]
    decided = decide(votes, "majority", of="out")
    assert not decided["m2"].up and decided["m0"].up


@given(st.lists(st.sets(st.sampled_from(KEYS)), min_size=1, max_size=7))
def test_down_exactly_when_a_majority_sees_it_down(downs: list[set[str]]) -> None:
    votes = [vote(f"i{n}", down) for n, down in enumerate(downs)]
    for key, decision in decide(votes, "majority").items():
        seen_down = sum(key in d for d in downs)
        assert decision.up == (seen_down * 2 <= len(downs))


class Given:
    """A check whose verdicts are given: what this prober saw, without probing (the policy is what is tested)."""

    name = "given"

    def __init__(self, verdicts: tuple[Verdict, ...]) -> None:
        self.verdicts = verdicts

    def targets(self, config: object) -> list[Target]:
        return []

    async def observe(self, target: Target, probing: object) -> Observation:
        return Observation(target.key)

    def judge(self, observed: object, settings: object, previous: object, now: float) -> Judged:
        return Judged(self.verdicts)


def settings(fall: int = 1) -> PolicySettings:
    return PolicySettings(Thresholds(fall, 1), MappingProxyType({}), (), MappingProxyType({k: k for k in KEYS}))


def test_consensus_replaces_this_probers_verdict_both_ways_through_fall_and_rise() -> None:
    decided = decide([vote("a", {"m0"}), vote("b", {"m1"}), vote("c", {"m1"})], "majority")
    door = externals(decided, KEYS)
    assert all(e.mode is Mode.CONSENSUS for e in door)
    state = HealthState(MappingProxyType({k: MirrorHealth(True) for k in KEYS}))
    # this prober (a) saw m0 down and m1 up: the cluster says the opposite
    mine = (Verdict("m0", False, "refused"), Verdict("m1", True, "ok"), Verdict("m2", True, "ok"))
    observed = Observed(100.0, 0.1, external=door)
    step = next_state(state, observed, settings(), 100.0, [Given(mine)])
    later = next_state(state, observed, settings(fall=2), 100.0, [Given(mine)])
    assert step.state.mirrors["m0"].up and "1 of 3" in step.state.mirrors["m0"].reason
    assert not step.state.mirrors["m1"].up and "2 of 3 vantage points see it down" in step.state.mirrors["m1"].reason
    assert later.state.mirrors["m1"].up and later.state.mirrors["m1"].streak == 1  # fall 2: one more cycle


def test_every_local_probe_failing_is_outvoted_not_a_kept_table() -> None:
    decided = decide([vote("a", set(KEYS)), vote("b"), vote("c")], "majority")
    state = HealthState(MappingProxyType({k: MirrorHealth(True) for k in KEYS}))
    mine = tuple(Verdict(k, False, "unreachable", cause="unreachable") for k in KEYS)
    step = next_state(state, Observed(100.0, 0.1, external=externals(decided, KEYS)), settings(), 100.0,
                      [Given(mine)])
    assert not step.kept and all(h.up for h in step.state.mirrors.values())


def test_read_prefix_ignores_garbage_oversized_and_impostors() -> None:
    prefix = "/dnsbalance/z/"
    good = encode(vote("a", {"m0"}))
    entries = [
        (prefix + "votes/a", good),
        (prefix + "votes/b", b"\xff\xfe not json"),
        (prefix + "votes/c", b'{"v":1,"i":"c","c":"d","n":1,"up":"m0","down":[],"out":[]}'),
        (prefix + "votes/d", encode(vote("a"))),  # a value claiming another instance
        (prefix + "votes/e", b"[" * 600_000),
        (prefix + "votes/f", b'{"v":1,"i":"f","c":"d","n":1,"up":["m0"],"down":["m0"],"out":[]}'),
        (prefix + "elsewhere/x", good),
        (prefix + "reference/default", b'{"serial": 5}'),
        (prefix + "reference/main", encode_reference(Reference("2026120301", "2026120300", 10.0, "2026120301", 9.0))),
    ]
    read = read_prefix(entries, prefix)
    assert [v.instance for v in read.votes] == ["a"] and read.votes[0].down == {"m0"}
    assert len(read.ignored) == 7, read.ignored
    assert any("votes/e: 600000 bytes" in p for p in read.ignored)
    assert any("votes/d: names instance 'a'" in p for p in read.ignored)
    assert list(read.references) == ["main"] and read.references["main"][1].serial == "2026120301"


def test_a_shared_reference_ahead_is_adopted_one_behind_is_not() -> None:
    shared = {"main": (b"", Reference("2026120302", "2026120301", 50.0, "2026120302", 40.0)),
              "security": (b"", Reference("2026120100"))}
    mine = {"main": Reference("2026120301"), "security": Reference("2026120200")}
    merged = adopt(mine, shared)
    assert merged["main"].serial == "2026120302" and merged["main"].since == 50.0
    assert merged["security"].serial == "2026120200"


@given(st.frozensets(st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
                     max_size=30), st.frozensets(st.sampled_from(KEYS)))
def test_a_vote_reads_back_as_written(up: frozenset[str], down: frozenset[str]) -> None:
    written = Vote("ns-1.x_y", "abc", 7, up - down, down, down, "127.0.0.11")
    assert parse(encode(written), "ns-1.x_y") == written


def test_spread_offsets_stay_inside_the_interval_and_differ() -> None:
    offsets = {offset(f"ns{n}", 120) for n in range(1, 5)}
    assert len(offsets) == 4 and all(0 <= o < 120 for o in offsets)


def test_drift_between_name_servers_is_a_banner_and_a_metric() -> None:
    mine = vote("a")
    peers = (Vote("b", "d2", 1, frozenset(KEYS), frozenset()), vote("c"))
    view = ClusterView("a", "majority", "d1", True, peers=peers, mine=mine,
                       decisions=decide((mine, *peers), "majority"))
    assert view.drift and view.configurations == {"d1": ("a", "c"), "d2": ("b",)}
    status = {"cluster": view.as_json()}
    assert "id='cluster-drift'" in "".join(cluster_section.banners(status))
    assert "a, c: d1; b: d2" in "".join(cluster_section.banners(status))
    families = {f.name: f for f in cluster_section.metrics(status)}
    assert families["dnsbalance_cluster_configurations"].samples[0].value == 2
    assert families["dnsbalance_cluster_peers"].samples[0].value == 2
    agreed = ClusterView("a", "majority", "d1", True, peers=(vote("c"),), mine=mine)
    assert not agreed.drift and cluster_section.banners({"cluster": agreed.as_json()}) == []
