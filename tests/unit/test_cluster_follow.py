"""Following the others' votes between cycles, in process: the board orders values from reads and watch events by
etcd revision, the member hands over only decisions that changed, a vote leaves out what its prober's likely fault
failed, the allow-list of instance names, and a consensus applied between cycles through the same policy."""
from __future__ import annotations

import asyncio
from pathlib import Path
from types import MappingProxyType

from hypothesis import given
from hypothesis import strategies as st

from dnsbalance.cluster.board import Board
from dnsbalance.cluster.consensus import decide
from dnsbalance.cluster.member import ClusterMember, observed, read_prefix
from dnsbalance.cluster.view import ClusterView
from dnsbalance.cluster.vote import Vote, encode
from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import ClusterSettings
from dnsbalance.configuration.problems import Severity
from dnsbalance.health.state import HealthState
from dnsbalance.health.verdict import TargetKind, Verdict
from dnsbalance.ops import cluster_section

PREFIX = "/dnsbalance/z/"
KEYS = ("m0", "m1", "m2")


def vote(name: str, down: set[str] | frozenset[str] = frozenset(), cycle: int = 1) -> Vote:
    return Vote(name, "d", cycle, frozenset(KEYS) - set(down), frozenset(down))


def test_the_board_keeps_the_newest_revision_whatever_the_order() -> None:
    board = Board()
    assert board.event("k/a", b"2", 20)
    assert not board.read(15, [("k/a", b"1", 10)])  # an older read does not bring the old value back
    assert board.values() == [("k/a", b"2")]
    assert board.event("k/a", None, 30)  # the lease ran out
    assert not board.read(25, [("k/a", b"2", 20)])  # read before the deletion: the tombstone wins
    assert board.values() == []
    assert board.read(40, [("k/b", b"x", 35)]) and board.values() == [("k/b", b"x")]
    assert board.read(50, []) and board.values() == []  # a full read drops what it no longer holds
    assert not board.event("k/b", b"x", 35)  # an event older than the read that dropped it


@given(st.permutations(list(range(8))))
def test_events_in_any_order_end_at_the_newest(order: list[int]) -> None:
    board = Board()
    for revision in order:
        board.event("k", None if revision == 7 else str(revision).encode(), revision + 1)
    assert board.values() == []  # revision 8 (the deletion) is the newest
    board.event("k", b"again", 9)
    assert board.values() == [("k", b"again")]


def test_a_kind_whose_every_target_failed_is_not_voted() -> None:
    mirrors = tuple(Verdict(k, False, "timeout", cause="unreachable") for k in KEYS)
    relays = (Verdict("r/stun", True, "ok", kind=TargetKind.RELAY), Verdict("r2/stun", False, "no reply",
                                                                            kind=TargetKind.RELAY))
    assert observed(mirrors + relays) == relays  # a loaded prober's cycle: its mirrors count for nothing
    some = (Verdict("m0", False, "refused"), Verdict("m1", True, "ok"))
    assert observed(some) == some


def test_the_allow_list_ignores_other_names_and_lists_them() -> None:
    entries = [(PREFIX + "votes/a", encode(vote("a"))), (PREFIX + "votes/b", encode(vote("b", {"m0"}))),
               (PREFIX + "votes/intruder", encode(vote("intruder", set(KEYS))))]
    read = read_prefix(entries, PREFIX, ("a", "b", "c"))
    assert [v.instance for v in read.votes] == ["a", "b"]
    assert read.unknown == ("intruder",) and read.ignored == ("votes/intruder: intruder is not in cluster.instances",)
    assert [v.instance for v in read_prefix(entries, PREFIX).votes] == ["a", "b", "intruder"]  # no list: any name


def test_unknown_writers_on_the_status_page_and_in_metrics() -> None:
    view = ClusterView("a", "majority", "d", True, unknown=("intruder",), ignored=("votes/intruder: ...",))
    status = {"cluster": view.as_json()}
    assert "id='cluster-unknown'" in "".join(cluster_section.banners(status))
    assert "Unknown writers (not in cluster.instances, ignored): intruder" in cluster_section.section(status)
    families = {f.name: f for f in cluster_section.metrics(status)}
    assert families["dnsbalance_cluster_unknown_writers"].samples[0].value == 1


def member(instances: tuple[str, ...] = ()) -> ClusterMember:
    settings = ClusterSettings(("http://127.0.0.1:9",), "a", PREFIX, instances=instances, watch=False)
    m = ClusterMember(settings, 1.0, "d")
    m.mine = vote("a")
    m.view = ClusterView("a", "majority", "d", True)
    return m


def test_between_cycles_only_changed_decisions_are_handed_over() -> None:
    m = member()
    known = MappingProxyType({k: k for k in KEYS})
    try:
        m.board.read(5, [(PREFIX + "votes/a", encode(vote("a")), 3), (PREFIX + "votes/b", encode(vote("b")), 4)])
        assert {e.target for e in m.consensus(known)} == set(KEYS)  # the cycle hands every decision over
        assert m.between(known) == ()  # nothing new
        m.board.event(PREFIX + "votes/c", encode(vote("c", {"m1"})), 6)
        assert m.between(known) == ()  # one of three: m1 stays in, as it was
        m.board.event(PREFIX + "votes/b", encode(vote("b", {"m1"}, 2)), 7)
        handed = m.between(known)
        assert [(e.target, e.up) for e in handed] == [("m1", False)] and "2 of 3" in handed[0].note
        assert m.view.decisions["m1"].down == ("b", "c") and len(m.view.peers) == 2
        m.board.event(PREFIX + "votes/b", None, 8)  # b's lease ran out: one of two
        assert [(e.target, e.up) for e in m.between(known)] == [("m1", True)]
        m.view = ClusterView("a", "majority", "d", False)  # etcd out of reach: own verdicts, nothing handed
        assert m.between(known) == () and m.consensus(known) == ()
    finally:
        m.close()


def test_a_consensus_between_cycles_goes_through_the_policy_and_keeps_references(tmp_path: Path) -> None:
    from dnsbalance.health.observations import External, Mode
    from dnsbalance.health.reference import Reference
    from dnsbalance.serving.balancer import Balancer
    from dnsbalance.serving.inputs import load

    (tmp_path / "dnsbalance.yaml").write_text("zone: cdn.example.org\nnameservers:\n  ns1.cdn.example.org: "
                                              f"[192.0.2.53]\nstate_dir: {tmp_path / 'state'}\n")
    (tmp_path / "mirrors.yaml").write_text("mirrors:\n  alpha: {addresses: [192.0.2.1], url: 'http://a.example/'}\n"
                                           "  beta: {addresses: [192.0.2.2], url: 'http://b.example/'}\n")
    (tmp_path / "default.yaml").write_text("deb:\n  alpha: 10\n  beta: 10\n")
    loaded, problems = load(tmp_path)
    assert loaded is not None, problems
    balancer = Balancer(loaded, health=HealthState(archives=MappingProxyType({"default": Reference("2026")})))
    generation = balancer.generation
    out = (External("alpha", False, Mode.CONSENSUS, "cluster", "2 of 3 vantage points see it down"),)
    assert balancer.apply_between(out, 100.0)
    assert not balancer.health.mirrors["alpha"].up and balancer.generation == generation + 1
    assert balancer.health.archives["default"].serial == "2026" and balancer.health.cycles == 0
    assert not balancer.apply_between(out, 101.0)  # no target moved: no new table
    assert balancer.generation == generation + 1


SETTINGS = "zone: cdn.example.org\nnameservers:\n  ns1.cdn.example.org: [192.0.2.53]\n"


def config(tmp_path: Path, cluster: str) -> tuple[object, list[str]]:
    (tmp_path / "dnsbalance.yaml").write_text(SETTINGS + cluster)
    (tmp_path / "mirrors.yaml").write_text("mirrors:\n  alpha: {addresses: [192.0.2.1]}\n")
    (tmp_path / "default.yaml").write_text("deb:\n  alpha: 10\n")
    loaded, problems = check_config(tmp_path)
    return loaded, [str(p) for p in problems if p.severity is Severity.ERROR]


def test_instances_and_watch_settings(tmp_path: Path) -> None:
    loaded, errors = config(tmp_path, "cluster: {etcd: ['http://127.0.0.1:2379'], instance: ns2, "
                                      "instances: [ns3, ns1, ns2], watch: false}\n")
    assert errors == [] and loaded is not None
    cluster = loaded.settings.cluster  # type: ignore[attr-defined]
    assert cluster.instances == ("ns1", "ns2", "ns3") and cluster.watch is False
    _, errors = config(tmp_path, "cluster:\n  etcd: ['http://127.0.0.1:2379']\n  instance: ns4\n"
                                 "  instances: [ns1, 'a/b', ns1]\n  watch: sometimes\n")
    text = "\n".join(errors)
    assert "dnsbalance.yaml:7: cluster: instances: 'a/b' is not an instance name" in text
    assert "dnsbalance.yaml:7: cluster: instances: ns1 is listed twice" in text
    assert "cluster: this instance, ns4, is not in instances (ns1)" in text
    assert "dnsbalance.yaml:8: cluster: watch must be true or false" in text


def test_a_member_without_etcd_costs_a_cycle_its_deadline_at_most() -> None:
    m = member()
    m.view = ClusterView("a", "majority", "d")

    async def run() -> bool:
        return await m.exchange((Verdict("m0", True, "ok"),), HealthState(), "d")
    try:
        assert asyncio.run(run()) is False and m.view.connected is False  # nothing listens on port 9
    finally:
        m.close()


def test_probe_shows_each_vantage_point_this_probe_and_the_consensus() -> None:
    from dnsbalance.cluster.report import cluster_table

    settings = ClusterSettings(("http://127.0.0.1:9",), "a", PREFIX)
    read = read_prefix([(PREFIX + "votes/a", encode(vote("a", {"m0"}))),
                        (PREFIX + "votes/b", encode(vote("b", {"m0"}))), (PREFIX + "votes/c", encode(vote("c")))],
                       PREFIX)
    verdicts = (Verdict("m0", True, "ok"), Verdict("m1", False, "refused"), Verdict("m2", True, "ok"))
    lines = cluster_table(read, settings, verdicts, {k: k for k in KEYS})
    assert "live instances: a, b, c" in lines
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("m")}
    assert rows["m0"][1:5] == ["down", "down", "up", "up"] and rows["m0"][5] == "DOWN"
    assert rows["m1"][1:5] == ["up", "up", "up", "down"] and rows["m1"][5] == "up"
    unreachable = cluster_table("range: http://127.0.0.1:9: ConnectionFailedError", settings, verdicts, {})
    assert unreachable[1].startswith("etcd unreachable (range: http://127.0.0.1:9")
