"""Freshness through master pushes, pure: quorum reference, grace, locks, trace or nothing."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from dnsbalance.configuration.model import Archive
from dnsbalance.health.fetch import Fetched
from dnsbalance.health.reference import Probe, Reference, judge_archive, quorum_serial
from dnsbalance.health.state import HealthState, load, save
from tests.mirrors import SOFT_404, trace

NOW = 1_800_000_000.0
PUSHED = datetime.fromtimestamp(NOW - 60, UTC)  # the master published a minute ago
ARCHIVE = Archive("debian", "http://127.0.0.1:1/debian/", "project/trace/ftp-master.debian.org", max_lag=0,
                  quorum=0.5, grace=3600)


def got(body: bytes, content_type: str = "text/plain", status: int = 200) -> Fetched:
    return Fetched("http://127.0.0.1:1/x", status, body, None, 0.01, None, content_type)


def master(serial: int) -> Fetched:
    return got(trace(serial, PUSHED))


def probes(*serials: int, locked: tuple[int, ...] = ()) -> list[Probe]:
    return [Probe(f"m{i}", got(trace(s, PUSHED)), got(b"4242\n") if i in locked else got(b"", status=404),
                  "Archive-Update-in-Progress-m")
            for i, s in enumerate(serials)]


def oks(judged) -> list[bool]:  # type: ignore[no-untyped-def]
    return [v.ok for v in judged.verdicts]


def test_quorum_serial_is_the_newest_enough_carry_never_past_the_master() -> None:
    assert quorum_serial(["1", "1", "2", "2"], "2", 0.5) == "2"
    assert quorum_serial(["1", "1", "1", "2"], "2", 0.5) == "1"
    assert quorum_serial(["1", "3", "3", "3"], "2", 0.5) == "2"  # ahead of the master counts as carrying it
    assert quorum_serial(["1", "2", "2", "2", "2", "2"], "2", 1.0) == "1"


def test_a_push_keeps_everyone_serving_until_a_quorum_then_grace_then_out() -> None:
    before = judge_archive(ARCHIVE, master(100), probes(100, 100, 100, 100), None, NOW - 600)
    assert oks(before) == [True] * 4 and before.reference == Reference("100", None, NOW - 600, "100", NOW - 600)

    # The master publishes 101; one mirror has it: the reference stays 100, nobody is stale.
    one = judge_archive(ARCHIVE, master(101), probes(101, 100, 100, 100), before.reference, NOW)
    assert oks(one) == [True] * 4 and one.reference is not None and one.reference.serial == "100"
    assert "ahead of reference 100" in one.verdicts[0].reason and "reference 100" in one.note

    # Two of four: the reference is 101; the others are in grace from now.
    two = judge_archive(ARCHIVE, master(101), probes(101, 101, 100, 100), one.reference, NOW + 120)
    # master_since: when 101 was first seen (NOW), not the trace's date (NOW - 60): issue 23 item 3
    assert two.reference == Reference("101", "100", NOW + 120, "101", NOW)
    assert oks(two) == [True] * 4
    assert two.verdicts[2].reason == "serial 100, one push behind reference 101: in grace for 3600s more"

    # Past the grace the laggards are out, with the reason an operator can act on.
    late = judge_archive(ARCHIVE, master(101), probes(101, 101, 101, 100), two.reference, NOW + 120 + 3600)
    assert oks(late) == [True, True, True, False]
    assert late.verdicts[3].reason == "stale: serial 100, reference 101 for 3600s (grace 3600s)"


def test_more_than_one_push_behind_is_out_at_once() -> None:
    ref = Reference("102", "101", NOW, "102", NOW - 60)
    judged = judge_archive(ARCHIVE, master(102), probes(102, 102, 101, 100), ref, NOW + 10)
    assert oks(judged) == [True, True, True, False]
    assert judged.verdicts[3].reason == "stale: serial 100, more than one push behind reference 102"


def test_a_push_nobody_follows_becomes_the_reference_after_the_grace() -> None:
    ref = Reference("100", None, NOW - 7200, "101", NOW - 3600)  # 101 published an hour ago, no quorum yet
    judged = judge_archive(ARCHIVE, master(101), probes(100, 100, 100), ref, NOW)
    assert judged.reference is not None and judged.reference.serial == "101"
    assert oks(judged) == [False] * 3  # and no second grace: the push had its hour


def test_a_locked_mirror_is_syncing_and_a_soft_404_lock_is_not() -> None:
    judged = judge_archive(ARCHIVE, master(100), probes(100, 100, locked=(0,)), None, NOW)
    assert [v.syncing for v in judged.verdicts] == [True, False]
    assert judged.verdicts[0].ok and "Archive-Update-in-Progress-m present" in judged.verdicts[0].reason
    html = [Probe("m0", got(trace(100, PUSHED)), got(SOFT_404, "text/html"), "Archive-Update-in-Progress-m")]
    assert not judge_archive(ARCHIVE, master(100), html, None, NOW).verdicts[0].syncing


def test_trace_or_nothing() -> None:
    soft = [Probe("m0", got(SOFT_404, "text/html")), Probe("m1", got(trace(100, PUSHED)))]
    judged = judge_archive(ARCHIVE, master(100), soft, None, NOW)
    assert oks(judged) == [False, True]
    assert judged.verdicts[0].reason == "not a trace file: an HTML page"
    # A master serving an HTML page says nothing about freshness: mirrors are not all stale for it.
    html_master = judge_archive(ARCHIVE, got(SOFT_404, "text/html"), probes(100, 99), None, NOW)
    assert oks(html_master) == [True, True]
    assert html_master.note == "master served an HTML page at its stamp path: freshness not checked this cycle"
    # ... and with a reference from earlier cycles, mirrors are held to it.
    held = judge_archive(ARCHIVE, got(SOFT_404, "text/html"), probes(100, 98),
                         Reference("100", "99", NOW - 10, "100", NOW - 60), NOW)
    assert oks(held) == [True, False] and "judged against reference serial 100" in held.note


def test_no_master_is_liveness_only() -> None:
    archive = Archive("debian", None, "project/trace/ftp-master.debian.org", 0, 0.5, 3600)
    judged = judge_archive(archive, None, probes(1, 100), None, NOW)
    assert oks(judged) == [True, True] and judged.reference is None
    assert judged.verdicts[0].reason == "alive (no master configured: liveness only)"


def test_a_locked_mirror_does_not_count_toward_the_quorum() -> None:
    """ftpsync copies the upstream trace in stage 1, before the indices: mid-sync, the serial is not served."""
    before = judge_archive(ARCHIVE, master(100), probes(100, 100, 100, 100), None, NOW - 600)
    judged = judge_archive(ARCHIVE, master(101), probes(101, 101, 100, 100, locked=(0,)), before.reference, NOW)
    assert judged.reference is not None and judged.reference.serial == "100"
    assert [v.syncing for v in judged.verdicts] == [True, False, False, False]


def test_the_grace_runs_from_first_sight_not_from_an_old_trace_date() -> None:
    """A master reached through a mirror that gets the trace two hours late: the trace is two hours old when
    first seen, and the push must still wait for a quorum, then give its grace (issue 23 item 3)."""
    late = got(trace(101, datetime.fromtimestamp(NOW - 7200, UTC)))
    before = Reference("100", None, NOW - 86400, "100", NOW - 86400)
    one = judge_archive(ARCHIVE, late, probes(101, 100, 100, 100), before, NOW)
    assert one.reference is not None and one.reference.serial == "100" and one.reference.master_since == NOW
    assert oks(one) == [True] * 4
    two = judge_archive(ARCHIVE, late, probes(101, 101, 100, 100), one.reference, NOW + 600)
    assert two.reference == Reference("101", "100", NOW + 600, "101", NOW)
    assert oks(two) == [True] * 4 and "in grace for 3600s more" in two.verdicts[2].reason


def test_first_sight_survives_a_restart(tmp_path: Path) -> None:
    seen = Reference("100", None, NOW - 86400, "101", NOW)  # 101 first seen at NOW, no quorum yet
    save(HealthState(MappingProxyType({}), 5, MappingProxyType({"debian": seen})), tmp_path / "health.json")
    again = load(tmp_path / "health.json").archives["debian"]
    assert again == seen
    # 50 minutes later, after the restart: not yet `grace` since first sight, so no jump to the master's word
    judged = judge_archive(ARCHIVE, got(trace(101, datetime.fromtimestamp(NOW - 7200, UTC))),
                           probes(101, 100, 100), again, NOW + 3000)
    assert judged.reference is not None and judged.reference.serial == "100" and oks(judged) == [True] * 3


def test_a_master_trace_dated_in_the_future_or_far_past_is_a_warning() -> None:
    future = judge_archive(ARCHIVE, got(trace(101, datetime.fromtimestamp(NOW + 3600, UTC))),
                           probes(101, 101), None, NOW)
    assert "WARNING: the master's trace is dated 3600s in the future" in future.note
    assert future.reference is not None and future.reference.master_since == NOW
    old = judge_archive(ARCHIVE, got(trace(101, datetime.fromtimestamp(NOW - 3 * 86400, UTC))),
                        probes(101, 101), None, NOW)
    assert "WARNING: the master's trace is dated 72.0h ago" in old.note
    assert "WARNING" not in judge_archive(ARCHIVE, master(101), probes(101), None, NOW).note
