"""A master push through the real server: Python HTTP mirrors on 127.0.0.1 whose trace and ftpsync lock change
on a schedule, one cycle a second. No region concentrates on its first mirror to finish, none detours to a
wider table, mirrors showing their lock are avoided while their region can do without them."""
from __future__ import annotations

import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness import start_server
from tests.mirrors import Site, trace
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

STAMP = "/debian/project/trace/ftp-master.debian.org"
LOCK = "/debian/Archive-Update-in-Progress-{}"  # ftpsync's lock, named after the URL's host (the site's address)
OLD, NEW = 2026112200, 2026112206
OLD_DATE = datetime(2026, 11, 22, 0, 0, 0, tzinfo=timezone.utc)

# step -> (mirrors that start syncing: lock appears, mirrors that finish: new trace, lock gone)
SCHEDULE = [
    ("master publishes", [], []),
    ("kr1 jp1 lock", ["kr1", "jp1"], []),
    ("kr1 done; jp2 locks", ["jp2"], ["kr1"]),
    ("jp1 as1 done; de1 as1 lock", ["de1", "as1"], ["jp1", "as1"]),
    ("jp3 kr2 lock", ["jp3", "kr2"], []),
    ("eu1 def1 done: quorum", [], ["eu1", "def1"]),
    ("jp2 kr2 done", [], ["jp2", "kr2"]),
    ("jp3 de1 done", [], ["jp3", "de1"]),
]


@pytest.fixture
def fleet() -> Iterator[dict[str, Site]]:
    sites = {name: Site({STAMP: trace(OLD, OLD_DATE)}, address=ADDRESS.get(name, "127.0.0.1"))
             for name in [*MIRRORS, "master"]}
    yield sites
    for site in sites.values():
        site.stop()


def test_push_spreads_over_every_region(tmp_path: Path, country_mmdb: Path, fleet: dict[str, Site]) -> None:
    config = write_push_config(tmp_path / "config", country_mmdb, {n: s.url() for n, s in fleet.items()},
                               fleet["master"].url())
    server = start_server(config, tmp_path / "log", ipv6=False)
    lines = []
    try:
        server.wait_cycles(2, timeout=20)
        check_no_stampede(table_shares(server))
        lines.append(show("before", answered_shares(server)))
        published = datetime.now(timezone.utc).replace(microsecond=0)
        avoided_locked = False
        for step, (label, start, finish) in enumerate(SCHEDULE):
            if step == 0:
                fleet["master"].files[STAMP] = trace(NEW, published)
            for name in start:
                fleet[name].files[LOCK.format(ADDRESS[name])] = b"4242\n"
            for name in finish:
                fleet[name].files[STAMP] = trace(NEW, published)
                fleet[name].files.pop(LOCK.format(ADDRESS[name]), None)
            server.wait_cycles(2, timeout=20)  # the first may have begun before the change
            table = table_shares(server)
            check_no_stampede(table)  # exact: the pools in service
            answered = answered_shares(server)
            check_no_stampede(answered, tolerance=0.12)  # sampled: 150 answers per region
            lines.append(show(label, answered))
            locked = {n for n, s in fleet.items() if n in ADDRESS and LOCK.format(ADDRESS[n]) in s.files}
            avoided_locked |= bool(locked & {"jp1", "jp2", "jp3"} - set(table["country JP"]))
            if step == 1:  # the status page tells the lock apart from an outage
                rows = {m["name"]: m["archives"][0] for m in status(server)["mirrors"]}
                assert rows["jp1"]["status"] == "syncing" and rows["jp2"]["status"] == "up"
                lock = f"Archive-Update-in-Progress-{ADDRESS['jp1']}"
                assert rows["jp1"]["reason"].endswith(f"; syncing ({lock} present)")
        assert avoided_locked, "a JP mirror showing its lock was never avoided"
        log = server.log()
        assert f"archive default: reference serial {NEW} (was {OLD}; mirrors on it have 3600s of grace)" in log
        assert " is DOWN" not in log  # nobody was stale: the push moved with its quorum
        assert "every probed mirror failed" not in log and "FAIL OPEN" not in log
        final = table_shares(server)
        assert final["country JP"] == pytest.approx({"jp1": 1 / 3, "jp2": 1 / 3, "jp3": 1 / 3})
    finally:
        server.stop()
        print("\n" + "\n".join(lines))


def test_past_the_grace_laggards_leave(tmp_path: Path, country_mmdb: Path, fleet: dict[str, Site]) -> None:
    """grace 2s: once a quorum has the new serial, a mirror still on the old one is out after two seconds, and
    one two pushes behind is out at once."""
    config = write_push_config(tmp_path / "config", country_mmdb, {n: s.url() for n, s in fleet.items()},
                               fleet["master"].url(), extra=", grace: 2")
    server = start_server(config, tmp_path / "log", ipv6=False)
    try:
        server.wait_cycles(1, timeout=20)
        published = datetime.now(timezone.utc).replace(microsecond=0)
        for name in ["master", *(n for n in MIRRORS if n != "jp3")]:
            fleet[name].files[STAMP] = trace(NEW, published)
        server.wait_cycles(2, timeout=20)
        assert set(table_shares(server)["country JP"]) == {"jp1", "jp2", "jp3"}  # in grace
        server.wait_for_log(r"jp3 is DOWN: stale: serial 2026112200, reference 2026112206 for \d+s \(grace 2s\)",
                            timeout=15)
        server.wait_cycles(1, timeout=20)
        assert set(table_shares(server)["country JP"]) == {"jp1", "jp2"}
    finally:
        server.stop()


def test_mirror_added_at_reload_waits_for_its_first_verdict(tmp_path: Path, country_mmdb: Path,
                                                            fleet: dict[str, Site]) -> None:
    """A mirror added at reload is pending until a cycle judges it: never answered before, shown as pending."""
    config = write_push_config(tmp_path / "config", country_mmdb, {n: s.url() for n, s in fleet.items()},
                               fleet["master"].url(), interval=3600)  # one cycle at start-up, then none
    server = start_server(config, tmp_path / "log", ipv6=False)
    try:
        server.wait_for_log(r"table generation \d+ in service", timeout=20)
        mirrors = config / "mirrors.yaml"
        mirrors.write_text(mirrors.read_text() + f"  jp9: {{addresses: [127.0.2.99], url: '{fleet['jp1'].url()}'}}\n")
        (config / "country" / "JP.yaml").write_text("deb:\n  jp1: 0\n  jp2: 0\n  jp3: 0\n  jp9: 0\n")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_log("configuration reloaded")
        answers = set()
        for _ in range(120):
            answers |= {rr.address for rr in server.query("deb.cdn.example.org", subnet="1.0.16.0/24").answer[0]}
        assert answers == {ADDRESS["jp1"], ADDRESS["jp2"], ADDRESS["jp3"]}  # never 127.0.2.99
        rows = {m["name"]: m["archives"][0] for m in status(server)["mirrors"]}
        assert rows["jp9"]["status"] == "pending" and rows["jp9"]["reason"] == "pending: not judged yet"
        assert rows["jp1"]["status"] == "up"
    finally:
        server.stop()
