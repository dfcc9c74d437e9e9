"""Archives: `deb` and `security` from the same hosts with their own masters and stamps, judged apart, against
real HTTP mirrors on 127.0.0.1; trace or nothing (soft-404 pages, gzip bodies, an HTML master)."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from dnsbalance.configuration.load import load_config
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.build import build_table
from dnsbalance.health.cycle import CycleReport, run_cycle
from dnsbalance.health.fetch import new_client
from dnsbalance.health.state import HealthState, advance
from tests.harness import ROOT
from tests.mirrors import SOFT_404, Archive, Mirror, Site, trace

DEB = "project/trace/ftp-master.debian.org"
SEC = "project/trace/security-master.debian.org"
NOWHERE = Location(None, None, 0)


@pytest.fixture
def sites() -> Iterator[dict[str, Site]]:
    """Two masters and three hosts: both carries both archives (security one push behind), deb only the main
    archive, sec only the security archive."""
    debian, security = Archive(), Archive()
    security.serial = 2026112205
    found = {
        "debmaster": Site({"/debian/" + DEB: debian.stamp()}),
        "secmaster": Site({"/debian-security/" + SEC: security.stamp()}),
        # the mirrors listen at the loopback addresses mirrors.yaml gives them (each is probed there too)
        "both": Site({"/debian/" + DEB: debian.stamp(), "/debian-security/" + SEC: security.stamp(behind=1)},
                     address="127.0.0.21"),
        "deb": Site({"/debian/" + DEB: debian.stamp()}, address="127.0.0.22"),
        "sec": Site({"/debian-security/" + SEC: security.stamp()}, address="127.0.0.23"),
    }
    yield found
    for site in found.values():
        site.stop()


def archives_config(target: Path, sites: dict[str, Site], security_names: str = "[security]") -> Path:
    target.mkdir()
    (target / "dnsbalance.yaml").write_text(f"""\
zone: cdn.example.org
nameservers: {{ns1.cdn.example.org: [192.0.2.53]}}
health: {{timeout: 1}}
archives:
  debian:
    master: {sites['debmaster'].url('/debian/')}
  debian-security:
    master: {sites['secmaster'].url('/debian-security/')}
    stamp: {SEC}
    names: {security_names}
""")
    (target / "mirrors.yaml").write_text(f"""\
mirrors:
  both:
    addresses: [127.0.0.21]
    archives: {{debian: '{sites['both'].url('/debian/')}', debian-security: '{sites['both'].url('/debian-security/')}'}}
  deb: {{addresses: [127.0.0.22], url: '{sites['deb'].url('/debian/')}'}}
  sec:
    addresses: [127.0.0.23]
    archives: {{debian-security: '{sites['sec'].url('/debian-security/')}'}}
""")
    (target / "default.yaml").write_text("deb:\n  both: 0\n  deb: 0\nsecurity:\n  both: 0\n  sec: 0\n")
    return target


def cycle(config_dir: Path, previous: HealthState | None = None) -> CycleReport:
    config = load_config(config_dir)

    async def once() -> CycleReport:
        client = new_client(10)
        try:
            return await run_cycle(config, client, 10, previous)
        finally:
            await client.aclose()
    return asyncio.run(once())


def test_each_archive_is_judged_against_its_own_master(tmp_path: Path, sites: dict[str, Site]) -> None:
    config_dir = archives_config(tmp_path / "c", sites)
    report = cycle(config_dir)
    verdicts = {v.name: v for v in report.verdicts}
    served = {"both/debian@127.0.0.21#deb.cdn.example.org", "deb/debian@127.0.0.22#deb.cdn.example.org",
              "both/debian-security@127.0.0.21#security.cdn.example.org",
              "sec/debian-security@127.0.0.23#security.cdn.example.org"}
    assert set(verdicts) == {"both/debian", "deb/debian", "both/debian-security", "sec/debian-security", *served}
    # each address serves the stamp of the archive its name is served from, under that name
    assert all(verdicts[key].ok for key in served)
    assert verdicts["both/debian"].ok and verdicts["deb/debian"].ok and verdicts["sec/debian-security"].ok
    # compared with security-master's serial, not ftp-master's: one push behind is stale on first sight
    assert verdicts["both/debian-security"].reason == "stale: serial 2026112204, master has 2026112205"
    assert "debian: master serial 2026112101" in report.master_note
    assert "debian-security: master serial 2026112205" in report.master_note

    # A mirror down for security still serves deb.
    config = load_config(config_dir)
    health = advance(HealthState(), report.verdicts, 1, 1, report.started, [v.name for v in report.verdicts],
                     report.references)
    table = build_table(config, health.view(), 1, 1)
    deb = table.pool_for(NOWHERE, "deb", RType.A)
    security = table.pool_for(NOWHERE, "security", RType.A)
    assert deb is not None and {c.name for c in deb.candidates} == {"both", "deb"}
    assert security is not None and {c.name for c in security.candidates} == {"sec"}
    assert set(health.archives) == {"debian", "debian-security"}


def test_check_names_the_archive_a_mirror_lacks(tmp_path: Path, sites: dict[str, Site]) -> None:
    config_dir = archives_config(tmp_path / "c", sites)
    (config_dir / "default.yaml").write_text("deb:\n  both: 0\n  sec: 0\nsecurity:\n  both: 0\n  deb: 0\n")
    with (config_dir / "mirrors.yaml").open("a") as handle:
        handle.write("  odd: {addresses: [192.0.2.9], archives: {debian-ports: 'http://127.0.0.1:9/'}}\n")
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "check", "--config", str(config_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    out = result.stdout
    assert (f"{config_dir}/default.yaml:1: deb: mirror 'sec' does not carry archive 'debian' that deb is served "
            "from (it carries: debian-security)") in out
    assert (f"{config_dir}/default.yaml:4: security: mirror 'deb' does not carry archive 'debian-security' that "
            "security is served from (it carries: debian)") in out
    assert (f"{config_dir}/mirrors.yaml:9: mirror 'odd': unknown archive 'debian-ports' "
            "(defined: debian, debian-security)") in out


def test_check_rejects_a_name_claimed_twice_and_old_keys_beside_archives(tmp_path: Path,
                                                                         sites: dict[str, Site]) -> None:
    config_dir = archives_config(tmp_path / "c", sites, security_names="[security, security]")
    settings = config_dir / "dnsbalance.yaml"
    settings.write_text(settings.read_text().replace("health: {timeout: 1}", "health: {timeout: 1, stamp: x}"))
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "check", "--config", str(config_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    assert (f"{config_dir}/dnsbalance.yaml:3: health: stamp is the single-archive form; with archives: each "
            "archive names its own stamp") in result.stdout
    assert (f"{config_dir}/dnsbalance.yaml:10: archive 'debian-security': 'security' is already served from "
            "archive 'debian-security'") in result.stdout


def test_soft_404_gzip_and_html_master(tmp_path: Path) -> None:
    archive = Archive()
    loopback = {"fresh": "127.0.0.31", "html": "127.0.0.32", "gzip": "127.0.0.33"}  # each listens at its address
    fleet = {name: Mirror(archive, name, address=loopback[name]) for name in loopback}
    master = Mirror(archive, "fresh")
    html_master = Mirror(archive, "html")
    try:
        urls = {name: m.url for name, m in fleet.items()}

        def config(name: str, master_url: str) -> Path:
            target = tmp_path / name
            target.mkdir()
            (target / "dnsbalance.yaml").write_text(
                "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n"
                f"health: {{timeout: 1, master: '{master_url}'}}\n")
            (target / "mirrors.yaml").write_text("mirrors:\n" + "".join(
                f"  {n}: {{addresses: [{loopback[n]}], url: '{u}'}}\n" for n, u in urls.items()))
            (target / "default.yaml").write_text("deb:\n" + "".join(f"  {n}: 0\n" for n in urls))
            return target

        verdicts = {v.name: v for v in cycle(config("a", master.url)).verdicts}
        # the soft-404 page has a Last-Modified matching nothing in particular: it is still no trace
        assert not verdicts["html"].ok and verdicts["html"].reason == "not a trace file: an HTML page"
        assert verdicts["gzip"].ok and verdicts["gzip"].reason == "serial matches master"
        assert verdicts["gzip"].stamp is not None and verdicts["gzip"].stamp.serial == "2026112101"
        assert verdicts["fresh"].ok

        report = cycle(config("b", html_master.url))
        verdicts = {v.name: v for v in report.verdicts}
        # the first note is the master's (the ftpsync lock names guessed follow it: these mirrors publish none)
        assert report.notes[0] == "master served an HTML page at its stamp path: freshness not checked this cycle"
        assert verdicts["fresh"].ok and verdicts["gzip"].ok  # an HTML master does not make fresh mirrors stale
        assert verdicts["fresh"].reason.startswith("alive, freshness not checked (master served an HTML page")
        assert SOFT_404.startswith(b"<!DOCTYPE html>") and trace(1, archive.date).startswith(b"Sat Nov 21")
    finally:
        for mirror in [*fleet.values(), master, html_master]:
            mirror.stop()
