"""One probe cycle against real HTTP mirrors on 127.0.0.1: healthy, dead, hostile, stale."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnsbalance.configuration.load import load_config
from dnsbalance.health.cycle import CycleReport, run_cycle
from dnsbalance.health.fetch import USER_AGENT, new_client
from dnsbalance.health.checks.served import ServedVerdict
from dnsbalance.health.verdict import StampVerdict
from tests.harness import FIXTURES, ROOT
from tests.mirrors import Archive, Mirror, refused_url

TIMEOUT = 1.0
BEHAVIOURS = ["fresh", "stale", "ahead", "error500", "slow", "huge", "drip", "redirect", "empty"]


@pytest.fixture
def archive() -> Archive:
    return Archive()


@pytest.fixture
def fleet(archive: Archive) -> Iterator[dict[str, Mirror]]:
    mirrors = {b: Mirror(archive, b, slow_seconds=TIMEOUT * 3) for b in [*BEHAVIOURS, "master"]}
    mirrors["master"].behaviour = "fresh"
    yield mirrors
    for mirror in mirrors.values():
        mirror.stop()


def write_config(target: Path, urls: dict[str, str], master: str | None, max_lag: int = 0) -> Path:
    target.mkdir()
    (target / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n"
        f"health: {{timeout: {TIMEOUT}, max_lag: {max_lag}"
        + (f", master: '{master}'" if master else "") + "}\n")
    (target / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        # the mirrors' addresses are where their test servers listen: the served probes (each address, the
        # balanced name as Host) reach the same server as the URL's
        f"  {name}: {{addresses: [127.0.0.1], url: '{url}'}}\n" for name, url in urls.items()))
    (target / "default.yaml").write_text("deb:\n" + "".join(f"  {name}: 0\n" for name in urls))
    return target


def cycle(config_dir: Path) -> CycleReport:
    config = load_config(config_dir)

    async def once() -> CycleReport:
        client = new_client(10)
        try:
            return await run_cycle(config, client, 10)
        finally:
            await client.aclose()
    return asyncio.run(once())


def stamp_verdicts(report: CycleReport) -> dict[str, StampVerdict]:
    """Mirrors are judged by their stamp: their verdicts carry the HTTP status and the stamp read (beside them,
    one served verdict per address and name, health/checks/served.py)."""
    found = {v.name: v for v in report.verdicts if isinstance(v, StampVerdict)}
    served = [v for v in report.verdicts if isinstance(v, ServedVerdict)]
    assert len(found) + len(served) == len(report.verdicts)
    assert {v.name for v in served} == {f"{name}@127.0.0.1#deb.cdn.example.org" for name in found}
    return found


def test_every_behaviour_judged_within_one_timeout(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    urls = {b: fleet[b].url for b in BEHAVIOURS} | {"refused": refused_url()}
    report = cycle(write_config(tmp_path / "c", urls, fleet["master"].url))
    verdicts = stamp_verdicts(report)
    # huge: a fresh stamp followed by 10 MB; read to 64 KiB, judged by the stamp, and cut off
    assert {n for n, v in verdicts.items() if v.ok} == {"fresh", "ahead", "huge"}
    assert verdicts["stale"].reason == "stale: serial 2026112100, master has 2026112101"
    assert verdicts["error500"].reason == "HTTP 500" and verdicts["error500"].status == 500
    assert verdicts["slow"].reason == "timeout after 1s"
    assert verdicts["drip"].reason.startswith("timeout after 1s (HTTP 200")
    assert verdicts["redirect"].reason == "more than 5 redirects"
    assert verdicts["refused"].reason.startswith("cannot connect")
    # the master's trace has a serial: a body that is no trace is "not a trace file", never fresh
    assert verdicts["empty"].reason == "not a trace file: 0 bytes without serial or date"
    # Hostile mirrors cannot stretch the cycle: all probes run at once, each under one deadline.
    assert report.duration < TIMEOUT * 2.5
    assert "master serial 2026112101" in report.master_note


def test_huge_body_is_read_only_to_64k(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    report = cycle(write_config(tmp_path / "c", {"huge": fleet["huge"].url}, None))
    (verdict,) = stamp_verdicts(report).values()
    assert verdict.ok  # no master: liveness only, and the huge mirror did answer 200 in time
    assert verdict.stamp is not None and verdict.stamp.serial == "2026112101"
    assert report.duration < TIMEOUT  # 10 MB were not read


def test_master_down_skips_freshness(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    urls = {"fresh": fleet["fresh"].url, "stale": fleet["stale"].url, "dead": refused_url()}
    report = cycle(write_config(tmp_path / "c", urls, refused_url()))
    verdicts = stamp_verdicts(report)
    assert verdicts["stale"].ok and verdicts["fresh"].ok and not verdicts["dead"].ok
    assert "freshness not checked" in verdicts["stale"].reason
    assert report.master_note.startswith("master unreadable (cannot connect")


def test_max_lag_lets_a_slightly_stale_mirror_pass(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    urls = {"stale": fleet["stale"].url}
    assert stamp_verdicts(cycle(write_config(tmp_path / "a", urls, fleet["master"].url, max_lag=6 * 3600)))["stale"].ok
    assert not stamp_verdicts(cycle(write_config(tmp_path / "b", urls, fleet["master"].url, max_lag=3600)))["stale"].ok


def test_user_agent_names_dnsbalance() -> None:
    assert USER_AGENT.startswith("dnsbalance/")


def test_probe_command_prints_a_table(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    urls = {"fresh": fleet["fresh"].url, "stale": fleet["stale"].url, "dead": refused_url()}
    config = write_config(tmp_path / "c", urls, fleet["master"].url)
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--config", str(config)], check=False,
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1, result.stderr  # two mirrors failing, the default table still served: warning
    lines = result.stdout.splitlines()
    assert lines[0].startswith("DNSBALANCE WARNING - 2 of 3 mirrors failing: dead, stale | ")
    assert lines[1].split() == ["name", "http", "latency", "stamp", "lag", "verdict", "reason"]
    fresh = next(line for line in lines if line.startswith("fresh "))
    assert fresh.split()[1] == "200" and "serial 2026112101" in fresh and " ok " in fresh
    stale = next(line for line in lines if line.startswith("stale "))
    assert "21600s" in stale and "FAIL" in stale
    dead = next(line for line in lines if line.startswith("dead "))
    assert "cannot connect" in dead
    summary = next(line for line in lines if " mirrors usable" in line)
    # each mirror's address under the balanced name counts apart: fresh's and stale's (a stale stamp is still
    # a trace: freshness is the stamp check's) serve it
    assert "1 of 3 mirrors usable, 2 of 3 served addresses; master serial 2026112101" in summary
    # none of these test mirrors publishes ftpsync's _hierarchy: their lock names are guesses, said on lines of
    # their own after the summary, before the failing mirrors
    after = lines[lines.index(summary) + 1:]
    assert [line.split(":")[0] for line in after[:3]] == ["fresh", "stale", "dead"]
    assert after[0].startswith("fresh: WARNING: lock name Archive-Update-in-Progress-127.0.0.1 guessed from the "
                               "URL's host, never confirmed")
    assert after[3:] == [f"failing mirror dead: {dead.split('FAIL', 1)[1].strip()}",
                         "failing mirror stale: stale: serial 2026112100, master has 2026112101"]


def test_shipped_configs_probe_nothing_outside_loopback() -> None:
    for path in [*(ROOT / "config").rglob("*.yaml"), *FIXTURES.rglob("*.yaml")]:
        for line in path.read_text().splitlines():
            for key in ("url:", "master:"):
                if key in line.split("#")[0]:
                    value = line.split(key, 1)[1].strip().strip("'\"{} ,")
                    assert value.startswith(("http://127.", "http://[::1]", "ftp://127.")), f"{path}: {line}"


def test_mirrors_and_relays_are_probed_together(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    """Issue 22 item 6a: one gate for every check, so a cycle whose slowest mirror and slowest relay both time out
    takes one timeout, not one after the other."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes STUN requests, never answers
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        config = write_config(tmp_path / "c", {"slow": fleet["slow"].url}, None)
        with (config / "mirrors.yaml").open("a") as handle:
            handle.write(f"relays:\n  silent: {{addresses: [127.0.0.1], stun: {port}}}\n")
        report = cycle(config)
    finally:
        silent.close()
    assert [(v.name, v.ok, v.reason) for v in report.verdicts if not isinstance(v, ServedVerdict)] == [
        ("slow", False, "timeout after 1s"), ("silent/stun", False, f"127.0.0.1:{port} no STUN reply within 1s")]
    assert report.duration < TIMEOUT * 1.6  # one after the other took 2 timeouts
