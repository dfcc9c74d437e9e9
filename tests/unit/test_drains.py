"""Operators' drains in process (issue 26 items 3-5): the drains file, the table builder leaving a drained mirror out
of every pool (failing open too), the history spans and strip geometry that keep a 30 s outage visible."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dnsbalance import drains
from dnsbalance.configuration.load import load_config
from dnsbalance.drains import BadDrains, Drain
from dnsbalance.ops.history import drained_intervals, geometry, history, overlay, view_seconds
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.build import build_table
from dnsbalance.ranking.pool import Judgement, Why
from dnsbalance.health.events import Event, Kind
from dnsbalance.health.view import ALL_USABLE


def test_file_round_trip_and_expiry(tmp_path: Path) -> None:
    path = tmp_path / "drains.json"
    assert drains.read(path) == {}
    kept = Drain("jp1", "disk swap", "alice", 100.0)
    ending = Drain("jp2", "", "bob", 100.0, until=200.0)
    drains.change(path, lambda found: {**found, "jp1": kept, "jp2": ending})
    assert drains.read(path) == {"jp1": kept, "jp2": ending}
    assert set(drains.active(drains.read(path), 150.0)) == {"jp1", "jp2"}
    assert set(drains.active(drains.read(path), 200.0)) == {"jp1"}  # `until` is the end: over at it
    assert kept.describe() == "drained by alice: disk swap"
    assert ending.describe().startswith("drained by bob (until 1970-01-01 00:03:20 UTC")


def test_a_file_that_is_not_drains_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "drains.json"
    path.write_text("{not json")
    with pytest.raises(BadDrains):
        drains.change(path, lambda found: {**found, "jp1": Drain("jp1", "", "a", 1.0)})
    assert path.read_text() == "{not json"
    path.write_text('{"drains": {"jp1": {"since": "yesterday"}}}')
    with pytest.raises(BadDrains):
        drains.read(path)


def test_changes_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "drains.json"

    def add(name: str) -> None:
        drains.change(path, lambda found: {**found, name: Drain(name, "", "t", 1.0)})

    threads = [threading.Thread(target=add, args=(f"m{i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(drains.read(path)) == {f"m{i}" for i in range(20)}


def test_watch_sees_a_change_once(tmp_path: Path) -> None:
    path = tmp_path / "drains.json"
    watch = drains.DrainWatch(path)
    assert not watch.poll()  # no file: no drains, nothing changed
    drains.change(path, lambda found: {"jp1": Drain("jp1", "", "a", 1.0)})
    assert watch.poll() and set(watch.drains) == {"jp1"}
    assert not watch.poll()
    path.write_text("garbage")
    assert not watch.poll() and watch.problem and set(watch.drains) == {"jp1"}  # the last good drains stay


def test_a_file_unreadable_for_a_moment_is_read_once_it_can_be(tmp_path: Path) -> None:
    """`drain` under sudo writes the file before it gives it to the server's user: a poll in between fails,
    and the chown that follows changes neither size, mtime nor inode. The next poll must read it."""
    path = tmp_path / "drains.json"
    drains.change(path, lambda found: {"jp1": Drain("jp1", "", "a", 1.0)})
    path.chmod(0)
    watch = drains.DrainWatch(path)
    if os.geteuid() == 0:  # root reads whatever the mode: make the read fail another way
        real = drains.read
        drains.read = lambda _: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))  # type: ignore
        try:
            assert not watch.poll() and watch.problem
        finally:
            drains.read = real
    else:
        assert not watch.poll() and watch.problem
    path.chmod(0o644)
    assert watch.poll() and set(watch.drains) == {"jp1"} and watch.problem is None


def test_drain_times_out_of_range_are_refused_not_shown(tmp_path: Path) -> None:
    """A drain `until` far beyond any clock made every listing and the status page fail (gmtime overflow)."""
    path = tmp_path / "drains.json"
    path.write_text('{"drains": {"jp1": {"since": 1000, "until": 6.048e18, "by": "a", "reason": ""}}}')
    with pytest.raises(BadDrains, match="out of range"):
        drains.read(path)
    assert drains.clock(6.048e18).endswith("(not a date)")
    assert drains.clock(0) == "1970-01-01 00:00:00 UTC"


def test_drained_mirror_is_out_of_every_pool_even_failing_open(config_dir: Path) -> None:
    config = load_config(config_dir)
    table = build_table(config, ALL_USABLE, 1, 1, drained=frozenset({"jp1", "def1", "def2"}))
    assert table.judged["jp1"] is Judgement.DRAINED
    jp = table.countries["JP"]
    assert "jp1" not in {c.name for c in jp.usable[("deb", RType.A)].candidates}
    assert ("jp1", Why.OPERATOR_DRAIN) in {(x.target, x.why) for x in jp.left_out[("deb", RType.A)]}
    # the default table's two mirrors drained: its names have nothing, and never fail open onto a drained one
    for pool in (*table.default.usable.values(), *table.default.fail_open.values()):
        assert not {"def1", "def2"} & {c.name for c in pool.candidates}
    web = jp.web.usable.get(("_http._tcp.deb", RType.SRV)) if jp.web is not None else None
    assert web is None or "jp1" not in {c.name for c in web.candidates}
    assert build_table(config, ALL_USABLE, 1, 1).judged["jp1"] is not Judgement.DRAINED


def event(time: float, key: str, kind: str, up: bool = False, until: float | None = None) -> Event:
    return Event(time, key, up, "", kind, "alice", until)


def test_drained_intervals_from_the_operators_log() -> None:
    log = [event(100, "jp1", Kind.DRAIN), event(200, "jp1", Kind.UNDRAIN, True),
           event(300, "jp1", Kind.DRAIN, until=350), event(400, "jp2", Kind.DRAIN)]
    assert drained_intervals(log, "jp1", None, 0, 1000) == [(100, 200), (300, 350)]
    current = Drain("jp1", "", "alice", 900.0)
    assert drained_intervals(log, "jp1", current, 150, 1000) == [(150, 200), (300, 350), (900, 1000)]
    assert drained_intervals(log, "jp2", None, 0, 1000) == [(400, 1000)]


def test_overlay_and_history_ignore_operators_events_for_health() -> None:
    log = [Event(10, "jp1", True, "ok"), event(50, "jp1", Kind.DRAIN), Event(60, "jp1", False, "timeout")]
    spans = history(log, "jp1", 0, 100)
    assert spans == [[0, 10, "unknown"], [10, 60, "up"], [60, 100, "down"]]
    assert overlay(spans, [(50, 80)], "drained") == [[0, 10, "unknown"], [10, 50, "up"], [50, 80, "drained"],
                                                     [80, 100, "down"]]


def test_a_30_second_outage_is_at_least_two_whole_pixels_in_6_hours() -> None:
    now, length = 100_000.0, view_seconds("6h")
    assert length == 6 * 3600 and view_seconds("7d") == 7 * 86400 and view_seconds("1y") is None
    start = now - length
    outage = now - 7200
    spans = [[start, outage, "up"], [outage, outage + 30, "down"], [outage + 30, now, "up"]]
    placed = geometry(spans, start, length, 240)
    (x, width, _), = [p for p in placed if p[2][2] == "down"]
    assert width >= 2 and x == int(x) and 159 <= x <= 160
    assert placed[-1][2][2] == "down"  # drawn last: above the green around it
    # a down stretch at the very end stays inside the strip
    (x, width, _), = [p for p in geometry([[start, now - 1, "up"], [now - 1, now, "down"]], start, length, 240)
                      if p[2][2] == "down"]
    assert x + width <= 240


def test_drained_relay_leaves_every_srv_set(tmp_path: Path, country_mmdb: Path) -> None:
    from tests.harness import FIXTURES, make_config

    config = load_config(make_config(tmp_path / "zone", country_mmdb, FIXTURES / "wire" / "zone"))
    table = build_table(config, ALL_USABLE, 1, 1, drained=frozenset({"tokyo1"}))
    pools = [pool for _, tier in table.labelled_tiers() for key, pool in tier.usable.items() if key[1] is RType.SRV]
    assert pools and all("tokyo1" not in {c.name for c in pool.candidates} for pool in pools)
    assert table.judged["tokyo1/stun"] is Judgement.DRAINED
    every = build_table(config, ALL_USABLE, 1, 1)
    assert any("tokyo1" in {c.name for c in pool.candidates}
               for _, tier in every.labelled_tiers() for key, pool in tier.usable.items() if key[1] is RType.SRV)
