"""A master push as Debian's real ftpsync carries it: a local master archive behind an rsync daemon on a free
loopback port, nine mirrors synced from it by ftpsync (held between stage 1 and stage 2 with their
Archive-Update-in-Progress lock in place), served by Python HTTP servers, probed by the real server.
Per-region shares are sampled from real DNS answers at every step of the push."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.ftpsync import (
    STAMP,
    FtpsyncMirror,
    RsyncDaemon,
    have_ftpsync,
    master_trace,
    publish,
    stop_everything,
    sync_step,
)
from tests.harness import start_server
from tests.mirrors import Site
from tests.push import (
    ADDRESS,
    MIRRORS,
    answered_shares,
    check_no_stampede,
    show,
    status,
    table_shares,
    write_push_config,
)

pytestmark = pytest.mark.skipif(not have_ftpsync(), reason="needs the ftpsync and rsync Debian packages")

OLD, NEW = 2026112200, 2026112206
# step -> (syncs that start and stop after stage 1, lock in place; syncs that finish)
SCHEDULE = [
    ("master publishes", [], []),
    ("kr1 jp1 in stage 1", ["kr1", "jp1"], []),
    ("kr1 done; jp2 in stage 1", ["jp2"], ["kr1"]),
    ("jp1 as1 done; de1 in stage 1", ["de1", "as1"], ["jp1", "as1"]),
    ("jp3 kr2 in stage 1", ["jp3", "kr2"], []),
    ("eu1 def1 done: quorum", ["eu1", "def1"], ["eu1", "def1"]),
    ("jp2 kr2 done", [], ["jp2", "kr2"]),
    ("jp3 de1 done", [], ["jp3", "de1"]),
]


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[Path, RsyncDaemon, dict[str, FtpsyncMirror], dict[str, Site]]]:
    master = tmp_path / "master"
    (master / "debian").mkdir(parents=True)
    publish(master / "debian", OLD)
    daemon = RsyncDaemon(tmp_path)
    daemon.start(master / "debian")
    mirrors: dict[str, FtpsyncMirror] = {}
    sites: dict[str, Site] = {"master": Site(root=master)}
    try:
        for name in MIRRORS:
            # jp3 runs ftpsync under its own MIRRORNAME: its lock is named in mirrors.yaml
            mirror = FtpsyncMirror(name, tmp_path / name, f"rsync://127.0.0.1:{daemon.port}/debian/",
                                   "jp3.mirror.test" if name == "jp3" else ADDRESS[name])
            mirror.folder.mkdir()
            mirror.configure()
            mirrors[name] = mirror
        for mirror in mirrors.values():
            mirror.sync(hold=False)
        for mirror in mirrors.values():
            mirror.release()
            sites[mirror.name] = Site(root=mirror.root, address=ADDRESS[mirror.name])
        yield master / "debian", daemon, mirrors, sites
    finally:
        stop_everything(mirrors, sites, daemon)


def test_ftpsync_push_spreads_over_every_region(tmp_path: Path, country_mmdb: Path, archive) -> None:  # type: ignore[no-untyped-def]
    master, _, mirrors, sites = archive
    config = write_push_config(tmp_path / "config", country_mmdb, {n: sites[n].url() for n in MIRRORS},
                               sites["master"].url(),
                               mirror_extra={"jp3": ", lock: Archive-Update-in-Progress-jp3.mirror.test"})
    server = start_server(config, tmp_path / "server.log", ipv6=False)
    lines = []
    try:
        server.wait_cycles(2, timeout=20)
        assert "is DOWN" not in server.log()
        lines.append(show("before", answered_shares(server)))
        seen_locked = set()
        for step, (label, start, finish) in enumerate(SCHEDULE):
            if step == 0:
                publish(master, NEW)
            sync_step(mirrors, start, finish)
            for name in finish:
                assert not mirrors[name].lock.exists()
                assert f"Archive serial: {NEW}" in (mirrors[name].archive / "project/trace/ftp-master.debian.org"
                                                    ).read_text()
            server.wait_cycles(2, timeout=30)
            check_no_stampede(table_shares(server))
            answered = answered_shares(server, queries=120)
            check_no_stampede(answered, tolerance=0.13)
            lines.append(show(label, answered))
            rows = {m["name"]: m["archives"][0] for m in status(server)["mirrors"]}
            for name, mirror in mirrors.items():
                if mirror.lock.exists():
                    assert rows[name]["status"] == "syncing", (name, rows[name])
                    seen_locked.add(name)
        assert {"jp1", "jp2", "jp3", "kr1", "kr2", "de1"} <= seen_locked  # jp3 by its configured lock name
        log = server.log()
        assert f"archive default: reference serial {NEW} (was {OLD}" in log
        assert "is DOWN" not in log and "every probed mirror failed" not in log and "FAIL OPEN" not in log
        assert table_shares(server)["country JP"] == pytest.approx({"jp1": 1 / 3, "jp2": 1 / 3, "jp3": 1 / 3})
    finally:
        server.stop()
        print("\n" + "\n".join(lines))


def test_a_master_that_gets_the_trace_two_hours_late_still_spreads_the_push(  # type: ignore[no-untyped-def]
        tmp_path: Path, country_mmdb: Path, archive) -> None:
    """Issue 23 item 3: the master dnsbalance reads is itself a mirror that gets the trace two hours late (the
    trace it shows, and the one ftpsync carries to the mirrors, dated two hours before the push is seen). The
    grace runs from when the new serial was first seen, so the push is carried as any other: no region leaves
    its table, no mirror takes more than twice its share."""
    master, _, mirrors, sites = archive
    relay = Site({"/debian/" + STAMP: (master / STAMP).read_bytes()})  # the late master, still on OLD
    config = write_push_config(tmp_path / "config", country_mmdb, {n: sites[n].url() for n in MIRRORS},
                               relay.url(), mirror_extra={"jp3": ", lock: Archive-Update-in-Progress-jp3.mirror.test"})
    server = start_server(config, tmp_path / "server.log", ipv6=False)
    lines = []
    try:
        server.wait_cycles(2, timeout=20)
        for step, (label, start, finish) in enumerate(SCHEDULE):
            if step == 0:
                publish(master, NEW)
                dated = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
                (master / STAMP).write_text(master_trace(NEW, dated))  # what ftpsync then carries everywhere
                relay.files["/debian/" + STAMP] = (master / STAMP).read_bytes()
            sync_step(mirrors, start, finish)
            server.wait_cycles(2, timeout=30)
            check_no_stampede(table_shares(server))
            answered = answered_shares(server, queries=120)
            check_no_stampede(answered, tolerance=0.13)
            lines.append(show(label, answered))
        log = server.log()
        assert f"archive default: reference serial {NEW} (was {OLD}" in log
        assert "is DOWN" not in log and "FAIL OPEN" not in log
    finally:
        server.stop()
        relay.stop()
        print("\n" + "\n".join(lines))
