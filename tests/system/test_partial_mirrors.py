"""What ftpsync publishes about each mirror, read by the real server (issue 23 items 4 and 5): its own name
from project/trace/_hierarchy, which names its Archive-Update-in-Progress lock, and the architectures its own
trace lists. Real ftpsync runs sync a local master (amd64 and arm64) into three mirrors, one of them partial
(ARCH_INCLUDE=amd64); a name that requires arm64 is never answered with the partial mirror."""
from __future__ import annotations

import json
import lzma
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ftpsync import STAMP, FtpsyncMirror, RsyncDaemon, have_ftpsync, publish, stop_everything
from tests.harness import ROOT, Server, start_server
from tests.mirrors import Site

pytestmark = pytest.mark.skipif(not have_ftpsync(), reason="needs the ftpsync and rsync Debian packages")

# each mirror's site listens on its own loopback address: the one its A record and its probes name
ADDRESS = {"full1": "127.0.0.11", "full2": "127.0.0.12", "partial": "127.0.0.13", "plain": "127.0.0.14"}
NAME_OF = {address: name for name, address in ADDRESS.items()}
# MIRRORNAME of each ftpsync mirror: none is the URL's host (127.0.0.1), so a guessed lock name would miss
MIRRORNAMES = {"full1": "full1.mirror.test", "full2": "full2.mirror.test", "partial": "partial.mirror.test"}


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[tuple[dict[str, FtpsyncMirror], dict[str, Site]]]:
    master = tmp_path / "master" / "debian"
    master.mkdir(parents=True)
    publish(master, 2026120300)
    for arch in ("amd64", "arm64"):  # ftpsync lists the architectures whose Packages.* it carries
        folder = master / f"dists/stable/main/binary-{arch}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Packages.xz").write_bytes(lzma.compress(b"Package: hello\n"))
    daemon = RsyncDaemon(tmp_path)
    daemon.start(master)
    mirrors: dict[str, FtpsyncMirror] = {}
    sites: dict[str, Site] = {}
    try:
        for name, mirrorname in MIRRORNAMES.items():
            mirror = FtpsyncMirror(name, tmp_path / name, f"rsync://127.0.0.1:{daemon.port}/debian/", mirrorname,
                                   'ARCH_INCLUDE="amd64"\n' if name == "partial" else "")
            mirror.folder.mkdir()
            mirror.configure()
            mirrors[name] = mirror
            mirror.sync(hold=False)
        for mirror in mirrors.values():
            mirror.release()
            sites[mirror.name] = Site(root=mirror.root, address=ADDRESS[mirror.name])
        # a mirror that publishes no ftpsync traces of its own: its lock name can only be guessed
        sites["plain"] = Site({"/debian/" + STAMP: (master / STAMP).read_bytes()}, address=ADDRESS["plain"])
        yield mirrors, sites
    finally:
        stop_everything(mirrors, sites, daemon)


def write_config(folder: Path, sites: dict[str, Site]) -> Path:
    folder.mkdir()
    (folder / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nanswers: 4\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n"
        "soa: {rname: hostmaster.example.org}\ngeoip: {database: builtin}\nstate_dir: state\n"
        "health:\n  interval: 1\n  timeout: 1\n  require:\n    deb: {architectures: [arm64]}\n")
    (folder / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        f"  {name}: {{addresses: [{ADDRESS[name]}], url: '{site.url()}'}}\n" for name, site in sites.items()))
    (folder / "default.yaml").write_text("deb:\n" + "".join(f"  {n}: 100\n" for n in ADDRESS)
                                         + "deb-amd64:\n" + "".join(f"  {n}: 100\n" for n in ADDRESS))
    return folder


def answered(server: Server, name: str, rounds: int = 60) -> set[str]:
    found: set[str] = set()
    for _ in range(rounds):
        reply = server.query(f"{name}.cdn.example.org")
        found |= {NAME_OF[rr.address] for rrset in reply.answer for rr in rrset}
    return found


def status(server: Server, query: str = "") -> dict:
    with urllib.request.urlopen(server.status_url + "/status.json" + query, timeout=5) as reply:
        return json.load(reply)


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dnsbalance", *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    return done.stdout


def test_a_partial_mirror_never_serves_a_name_that_requires_what_it_lacks(  # type: ignore[no-untyped-def]
        tmp_path: Path, synced) -> None:
    mirrors, sites = synced
    assert "Architectures: amd64 \n" in (mirrors["partial"].archive / "project/trace/partial.mirror.test").read_text()
    config = write_config(tmp_path / "config", sites)
    server = start_server(config, tmp_path / "log", ipv6=False)
    try:
        server.wait_cycles(2, timeout=30)
        assert answered(server, "deb") == {"full1", "full2", "plain"}  # plain's architectures are unknown
        assert answered(server, "deb-amd64") == set(ADDRESS)  # no requirement: the partial mirror serves it

        rows = {line.split()[0]: line for line in run("probe", "--config", str(config)).splitlines() if line}
        assert "FAIL" in rows["partial+arm64"] and "its trace lists amd64, not arm64" in rows["partial+arm64"]
        assert "carries arm64" in rows["full1+arm64"]
        explain = run("explain", "--config", str(config), "127.0.0.1", "deb.cdn.example.org")
        assert "partial (partial+arm64): partial mirror: its trace lists amd64, not arm64" in explain, explain
        lost = [row for region in status(server, "?page=0")["regions"] for pool in region["pools"]
                if pool["name"] == "deb" and pool["type"] == "A" for row in pool["lost"]]
        assert [(r["target"], "its trace lists amd64, not arm64" in r["reason"]) for r in lost] == [("partial", True)]

        # the lock name is learned from _hierarchy: full1 mid-sync shows Archive-Update-in-Progress-full1.mirror.test
        mirrors["full1"].sync(hold=True)
        mirrors["full1"].wait_locked()
        server.wait_cycles(2, timeout=30)
        by_name = {m["name"]: m["archives"][0] for m in status(server)["mirrors"]}
        assert by_name["full1"]["status"] == "syncing", by_name["full1"]
        assert by_name["full2"]["status"] == "up"
        mirrors["full1"].release()
        plain = ("plain: WARNING: lock name Archive-Update-in-Progress-127.0.0.14 guessed from the URL's host, never "
                 "confirmed (no project/trace/_hierarchy (HTTP 404)); set lock: in mirrors.yaml")
        # said once as a warning in the log, though every cycle finds it again
        assert server.log().count(f"health: {plain}") == 1, server.log()
        assert "full1: WARNING" not in server.log()
        # and the status page's last cycle says it (no mirror row shows it: the lock is not a verdict)
        assert plain in status(server)["last_cycle"]["warnings"]
        assert "plain: WARNING: lock name Archive-Update-in-Progress-127.0.0.14 guessed" in \
               status(server)["last_cycle"]["master"]
        # `check` says it too, from the names the server learned (kept in health.json): plain's only
        checked = run("check", "--config", str(config))
        assert "mirrors.yaml:5: warning: mirror 'plain': ftpsync lock name never confirmed: neither learned from " \
               "its project/trace/_hierarchy nor set with lock:, so lock detection guesses " \
               "Archive-Update-in-Progress-127.0.0.14" in checked, checked
        assert "'full1'" not in checked and "'partial'" not in checked
    finally:
        server.stop()
