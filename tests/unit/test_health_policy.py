"""The health policy, pure and in process: (state, observations, settings, now) -> next state and records."""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from dnsbalance.configuration.load import load_config
from dnsbalance.configuration.model import Archive, Config
from dnsbalance.health.checks import CHECKS, ftpsync_lock, master_stamp, mirror_stamp, relay_service
from dnsbalance.health.checks.base import Judged, Probing, Target
from dnsbalance.health.checks.ftpsync_lock import LockRead
from dnsbalance.health.checks.master_stamp import MasterRead
from dnsbalance.health.checks.mirror_stamp import StampRead
from dnsbalance.health.checks.relay_service import RelayAnswer
from dnsbalance.health.cycle import observe
from dnsbalance.health.external import ExternalFile, parse
from dnsbalance.health.fetch import Fetched, new_client
from dnsbalance.health.observations import External, Mode, Observation, Observed
from dnsbalance.health.policy import (
    ProberSuspected,
    ReferenceMoved,
    Step,
    TableKept,
    Transition,
    UnknownTarget,
    next_state,
)
from dnsbalance.health.reference import Reference
from dnsbalance.health.relay_probe import RelayCheck
from dnsbalance.health.settings import PolicySettings, Thresholds
from dnsbalance.health.state import HealthState, MirrorHealth, load
from dnsbalance.health.verdict import StampVerdict, TargetKind, Verdict
from tests.mirrors import trace

NOW = 1_800_000_000.0
PUSHED = datetime.fromtimestamp(NOW - 60, UTC)
ARCHIVE = Archive("default", "http://127.0.0.1:1/debian/", "project/trace/ftp-master.debian.org", max_lag=0,
                  quorum=0.5, grace=3600, implicit=True)
MIRRORS = ("m0", "m1", "m2")
KNOWN = {**{m: m for m in MIRRORS}, "r/stun": "r"}


def settings(fall: int = 1, rise: int = 1, per_target: dict[str, Thresholds] | None = None) -> PolicySettings:
    return PolicySettings(Thresholds(fall, rise), MappingProxyType(per_target or {}), (ARCHIVE,),
                          MappingProxyType(KNOWN))


def got(body: bytes, status: int | None = 200, error: str | None = None) -> Fetched:
    return Fetched("http://127.0.0.1:1/x", status, body, None, 0.01, error, "text/plain")


DEAD = got(b"", None, "cannot connect: Connection refused")


def observed(stamps: dict[str, Fetched], master: int | None = 100, relay: bool | None = None,
             locks: tuple[str, ...] = (), external: tuple[External, ...] = (), at: float = NOW) -> Observed:
    results: dict[str, dict[str, Observation]] = {
        master_stamp.NAME: {"default": MasterRead("default", got(trace(master, PUSHED)))} if master else {},
        mirror_stamp.NAME: {key: StampRead(key, "default", fetched) for key, fetched in stamps.items()},
        ftpsync_lock.NAME: {key: LockRead(key, "Archive-Update-in-Progress-x",
                                          got(b"4242\n") if key in locks else got(b"", 404)) for key in stamps},
        relay_service.NAME: {} if relay is None else {"r/stun@127.0.0.1": RelayAnswer(
            "r/stun@127.0.0.1", "r/stun",
            RelayCheck("127.0.0.1", 3478, "stun", relay, "STUN Binding ok" if relay else "no STUN reply", 0.01))},
    }
    return Observed(at, 0.1, MappingProxyType({k: MappingProxyType(v) for k, v in results.items()}), external)


def fresh(*serials: int) -> dict[str, Fetched]:
    return {name: got(trace(serial, PUSHED)) for name, serial in zip(MIRRORS, serials)}


def ups(step: Step) -> dict[str, bool]:
    return {key: health.up for key, health in step.state.mirrors.items()}


def test_first_judgement_taken_as_is_and_reported_when_down() -> None:
    step = next_state(HealthState(), observed({**fresh(100, 100), "m2": DEAD}, relay=True), settings(3, 3), NOW)
    assert ups(step) == {"m0": True, "m1": True, "m2": False, "r/stun": True}
    assert Transition("m2", False, "cannot connect: Connection refused") in step.records
    assert not step.kept and step.state.cycles == 1
    assert isinstance(step.judged.verdicts[0], StampVerdict) and step.judged.verdicts[0].status == 200


def test_fall_and_rise_count_cycles_per_target() -> None:
    good, bad = fresh(100, 100, 100), {**fresh(100, 100), "m2": DEAD}
    state, seen = HealthState(), []
    for index, stamps in enumerate([good, bad, bad, good, good]):
        state = next_state(state, observed(stamps), settings(fall=2, rise=2), NOW + index).state
        seen.append(state.mirrors["m2"].up)
    assert seen == [True, True, False, False, True]
    assert state.mirrors["m0"].up and state.cycles == 5


def test_a_target_may_have_its_own_thresholds() -> None:
    state = next_state(HealthState(), observed(fresh(100, 100, 100)), settings(), NOW).state
    bad = {"m0": DEAD, "m1": DEAD, "m2": got(trace(100, PUSHED))}
    step = next_state(state, observed(bad), settings(fall=1, per_target={"m1": Thresholds(fall=3)}), NOW + 1)
    assert ups(step) == {"m0": False, "m1": True, "m2": True}
    assert step.state.mirrors["m1"].reason == "cannot connect: Connection refused (1 of 3 before down; still up)"


def test_every_mirror_failed_keeps_their_health_and_the_table() -> None:
    before = next_state(HealthState(), observed(fresh(100, 100, 100)), settings(), NOW).state
    step = next_state(before, observed(dict.fromkeys(MIRRORS, DEAD)), settings(), NOW + 1)
    assert step.records == (ProberSuspected(TargetKind.MIRROR, "no mirror could be reached: the prober's network "
                                                               "(or its resolver) is the likely fault"), TableKept())
    assert step.kept and step.state is before
    # the suspected verdicts are still reported, for the log and `probe`
    assert [v.ok for v in step.judged.verdicts] == [False, False, False]


def test_every_mirror_stale_names_the_push() -> None:
    late = NOW + 7200  # the master published 100 two hours ago, past the grace: it is the reference
    step = next_state(HealthState(), observed(fresh(99, 99, 99), master=100, at=late), settings(), late)
    (suspected, kept) = step.records
    assert isinstance(suspected, ProberSuspected) and kept == TableKept()
    assert suspected.cause.startswith("every mirror is behind the serial the master just published (100)")


def test_the_guard_is_per_kind() -> None:
    before = next_state(HealthState(), observed(fresh(100, 100, 100), relay=True), settings(), NOW).state
    mirrors_fail = next_state(before, observed(dict.fromkeys(MIRRORS, DEAD), relay=False), settings(), NOW + 1)
    assert [r for r in mirrors_fail.records if isinstance(r, ProberSuspected)] == [
        ProberSuspected(TargetKind.MIRROR, mirrors_fail.records[0].cause),  # type: ignore[union-attr]
        ProberSuspected(TargetKind.RELAY, "no mirror could be reached: the prober's network (or its resolver) is "
                                          "the likely fault")]
    assert mirrors_fail.kept and mirrors_fail.state is before

    relay_fails = next_state(before, observed({**fresh(100, 100), "m2": DEAD}, relay=False), settings(), NOW + 1)
    assert [r.kind for r in relay_fails.records if isinstance(r, ProberSuspected)] == [TargetKind.RELAY]
    assert not relay_fails.kept
    assert ups(relay_fails) == {"m0": True, "m1": True, "m2": False, "r/stun": True}  # the relay keeps its health
    assert relay_fails.state.mirrors["r/stun"] == before.mirrors["r/stun"]


def test_unjudged_targets_keep_their_state_and_unknown_ones_are_dropped() -> None:
    state = HealthState(MappingProxyType({"m2": MirrorHealth(False, reason="old"), "gone": MirrorHealth(True)}))
    step = next_state(state, observed(fresh(100, 100)), settings(), NOW)
    assert step.state.mirrors["m2"] == MirrorHealth(False, reason="old")
    assert "gone" not in step.state.mirrors and set(step.state.mirrors) == {"m0", "m1", "m2"}


def test_the_reference_moves_with_a_quorum_and_is_reported() -> None:
    first = next_state(HealthState(), observed(fresh(100, 100, 100)), settings(), NOW - 600)
    assert ReferenceMoved("default", "100", None, 3600) in first.records
    assert first.state.archives["default"].serial == "100"
    # a push: one mirror of three on it is no quorum, the others keep serving
    one = next_state(first.state, observed(fresh(101, 100, 100), master=101), settings(), NOW)
    assert not [r for r in one.records if isinstance(r, ReferenceMoved)]
    assert one.state.archives["default"].serial == "100" and all(ups(one).values())
    two = next_state(one.state, observed(fresh(101, 101, 100), master=101), settings(), NOW + 60)
    assert ReferenceMoved("default", "101", "100", 3600) in two.records
    assert all(ups(two).values())  # m2: one push behind, in grace
    assert two.state.mirrors["m2"].reason.startswith("serial 100, one push behind reference 101: in grace")


def test_a_failed_cycle_does_not_move_the_reference() -> None:
    # 101 first seen at NOW (issue 23 item 3: the grace runs from first sight, not from the trace's date)
    first = next_state(HealthState(), observed(fresh(100, 100, 100), master=101, relay=True), settings(), NOW)
    late = NOW + 7200  # 101 seen past the grace: alone, it would be the reference and every mirror stale
    step = next_state(first.state, observed(fresh(100, 100, 100), master=101, relay=True, at=late), settings(), late)
    assert [r.kind for r in step.records if isinstance(r, ProberSuspected)] == [TargetKind.MIRROR]
    assert not [r for r in step.records if isinstance(r, ReferenceMoved)]
    assert step.state.archives == first.state.archives


def test_a_locked_mirror_is_syncing() -> None:
    step = next_state(HealthState(), observed(fresh(100, 100, 100), locks=("m1",)), settings(), NOW)
    assert [h.syncing for h in step.state.mirrors.values()] == [False, True, False]
    assert step.state.view().status("m1").value == "syncing"


def outside(target: str, up: bool, mode: Mode = Mode.RULES) -> External:
    return External(target, up, mode, "state/external-health:1", "by hand")


def test_an_outside_observation_through_the_rules_is_one_more_probe() -> None:
    state = next_state(HealthState(), observed(fresh(100, 100, 100)), settings(), NOW).state
    down = (outside("m0", False),)
    one = next_state(state, observed(fresh(100, 100, 100), external=down), settings(fall=2), NOW + 1)
    assert one.state.mirrors["m0"].up
    assert one.state.mirrors["m0"].reason == ("down in state/external-health:1: by hand (1 of 2 before down; "
                                              "still up)")
    two = next_state(one.state, observed(fresh(100, 100, 100), external=down), settings(fall=2), NOW + 2)
    assert Transition("m0", False, "down in state/external-health:1: by hand") in two.records
    # up through the rules does not outvote a probe that fails: every source must agree on up
    three = next_state(two.state, observed({**fresh(100, 100), "m2": DEAD}, external=(outside("m2", True),)),
                       settings(), NOW + 3)
    assert not three.state.mirrors["m2"].up and three.state.mirrors["m0"].up


def test_a_final_outside_observation_overrides_probes_and_thresholds() -> None:
    state = next_state(HealthState(), observed({**fresh(100, 100), "m2": DEAD}), settings(), NOW).state
    final = (outside("m0", False, Mode.FINAL), outside("m2", True, Mode.FINAL))
    step = next_state(state, observed({**fresh(100, 100), "m2": DEAD}, external=final), settings(fall=5, rise=5),
                      NOW + 1)
    assert ups(step) == {"m0": False, "m1": True, "m2": True}
    assert step.state.mirrors["m0"].reason == "down (final) in state/external-health:1: by hand"
    assert step.state.mirrors["m0"].since == NOW + 1 and step.state.mirrors["m0"].streak == 0
    # the line gone, the probes take over again through fall/rise from the state it left
    after = next_state(step.state, observed({**fresh(100, 100), "m2": DEAD}), settings(fall=2, rise=2), NOW + 2)
    assert ups(after) == {"m0": False, "m1": True, "m2": True}
    assert after.state.mirrors["m2"].streak == 1


def test_a_name_stands_for_all_its_keys_and_unknown_names_are_reported() -> None:
    known = {"jaist": "jaist", "jaist/security": "jaist", "tokyo1/stun": "tokyo1", "tokyo1/turn-udp": "tokyo1"}
    wide = PolicySettings(Thresholds(), MappingProxyType({}), (ARCHIVE,), MappingProxyType(known))
    said = (outside("tokyo1", False, Mode.FINAL), outside("nowhere", False), outside("jaist/security", False))
    step = next_state(HealthState(), Observed(NOW, 0.0, external=said), wide, NOW)
    assert ups(step) == {"tokyo1/stun": False, "tokyo1/turn-udp": False, "jaist/security": False}
    assert [r for r in step.records if isinstance(r, UnknownTarget)] == [UnknownTarget(said[1])]


def test_outside_observations_still_apply_when_the_prober_is_suspected() -> None:
    state = next_state(HealthState(), observed(fresh(100, 100, 100)), settings(), NOW).state
    step = next_state(state, observed(dict.fromkeys(MIRRORS, DEAD), external=(outside("m1", False, Mode.FINAL),)),
                      settings(), NOW + 1)
    assert not step.kept and ups(step) == {"m0": True, "m1": False, "m2": True}


def test_the_policy_is_a_function() -> None:
    args = (HealthState(), observed({**fresh(100, 101), "m2": DEAD}, relay=True), settings(2, 2), NOW)
    assert next_state(*args) == next_state(*args)


def test_the_external_file_format() -> None:
    parsed = parse("# comment\njp3: down\n\njaist/debian-security: down final  # a script\ntokyo1: up final\n"
                   "jp4 up\njp5: maybe\njp6: down final please\n", "ext")
    assert parsed.observations == (
        External("jp3", False, Mode.RULES, "ext:2"),
        External("jaist/debian-security", False, Mode.FINAL, "ext:4", "a script"),
        External("tokyo1", True, Mode.FINAL, "ext:5"))
    assert [p.split(":")[0] for p in parsed.problems] == ["line 6", "line 7", "line 8"]


def test_the_external_file_never_wedges_or_raises(tmp_path: Path) -> None:
    missing = ExternalFile(tmp_path / "none")
    assert missing.read() == ()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert ExternalFile(fifo).read() == () and time.monotonic() - started < 1
    big = tmp_path / "big"
    big.write_text("m0: down\n" * 40_000)
    assert ExternalFile(big).read() == ()
    folder = ExternalFile(tmp_path)
    assert folder.read() == ()
    good = tmp_path / "good"
    good.write_bytes(b"m0: down\n\xff\xfe up\n")
    assert ExternalFile(good).read() == (External("m0", False, Mode.RULES, f"{good}:1"),)


def test_a_state_file_from_before_the_policy_loads(tmp_path: Path) -> None:
    saved = tmp_path / "health.json"  # as main wrote it before health/policy.py
    saved.write_text(json.dumps({"cycles": 7, "mirrors": {
        "jp1": {"up": True, "streak": 0, "reason": "serial matches master", "since": 1.0, "checked": 2.0,
                "lag": 0.0, "syncing": False},
        "tokyo1/stun": {"up": False, "streak": 1, "reason": "127.0.0.1:3478 no STUN reply within 5s", "since": 1.0,
                        "checked": 2.0, "lag": None, "syncing": False}},
        "archives": {"default": {"serial": "2026112101", "previous": None, "since": 1.0, "master": "2026112101",
                                 "master_since": 0.5}}}))
    state = load(saved)
    assert state.cycles == 7 and state.mirrors["jp1"].up and not state.mirrors["tokyo1/stun"].up
    step = next_state(state, observed(fresh(2026112101, 2026112101, 2026112101), master=2026112101), settings(),
                      NOW)
    assert step.state.archives["default"].serial == "2026112101" and "jp1" not in step.state.mirrors


@dataclass(frozen=True)
class Seen(Observation):
    valid: bool


class CertificateLike:
    """A new kind of check, as the next issues add them: targets from the configuration, one observation each
    (no I/O here), its own verdicts. Nothing else in health/ needs to know it."""

    name = "certificate-like"

    def targets(self, config: Config) -> Sequence[Target]:
        return [Target(name) for name in sorted(config.mirrors)]

    async def observe(self, target: Target, probing: Probing) -> Observation:
        return Seen(target.key, target.key != "jp2")

    def judge(self, observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference],
              now: float) -> Judged:
        return Judged(tuple(Verdict(o.target, o.valid, "valid" if o.valid else "certificate expired")
                            for o in observed.of(self.name).values() if isinstance(o, Seen)))


def test_a_new_kind_of_check_is_observed_by_target_name(config_dir: Path) -> None:
    config = load_config(config_dir)

    async def once() -> Observed:
        client = new_client(4)  # handed to every check; this one does not use it
        try:
            return await observe(config, client, checks=[CertificateLike()])
        finally:
            await client.aclose()

    seen = asyncio.run(once()).of("certificate-like")
    assert list(seen) == sorted(config.mirrors) and seen["jp2"] == Seen("jp2", False)


def test_a_new_kind_of_check_combines_with_the_others() -> None:
    extra = CertificateLike()
    stamps = observed(fresh(100, 100, 100))
    results = {**stamps.results, extra.name: {m: Seen(m, m != "m1") for m in MIRRORS}}
    both = Observed(NOW, 0.1, MappingProxyType(results))
    step = next_state(HealthState(), both, settings(), NOW, checks=(*CHECKS, extra))
    assert ups(step) == {"m0": True, "m1": False, "m2": True}
    assert step.state.mirrors["m1"].reason == "certificate expired"
    judged = {v.name: v for v in step.judged.verdicts}
    assert isinstance(judged["m1"], StampVerdict) and judged["m1"].status == 200  # the first check's verdict, failed
    assert ups(next_state(HealthState(), both, settings(), NOW)) == dict.fromkeys(MIRRORS, True)  # without it
