"""The health event log (issue 15 item 6): up/down changes of real HTTP mirrors appended to the state folder,
bounded in size, and read back by `dnsbalance events`."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType

from dnsbalance.health import events
from dnsbalance.health.state import HealthState, MirrorHealth
from tests.harness import ROOT, probe_everything, start_server, wait_cycles
from tests.mirrors import Mirror


def run_events(config_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnsbalance", "events", "--config", str(config_dir), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_dead_mirror_and_its_return_are_logged(tmp_path: Path, config_dir: Path,
                                              zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet)
    zone_fleet["jp4"].stop()
    zone_fleet["jp3"].behaviour = "stale"
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 1)
        zone_fleet["jp4"].start()
        server.wait_for_log(r"jp4 is UP", timeout=15)
    finally:
        server.stop()
    lines = (config_dir / "state" / "events.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    jp4 = [(e["up"], e["reason"]) for e in logged if e["mirror"] == "jp4"]
    assert [up for up, _ in jp4] == [False, True], jp4
    assert "cannot connect" in jp4[0][1]
    assert any(e["mirror"] == "jp3" and not e["up"] and e["reason"].startswith("stale") for e in logged)
    assert all(e["archive"] is None for e in logged)  # one implicit archive: keys are bare mirror names

    result = run_events(config_dir, "--mirror", "jp4")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert len(rows) == 2 and "jp4" in rows[0] and " DOWN " in rows[0] and " UP " in rows[1], rows
    assert "jp1" not in result.stdout
    everything = run_events(config_dir, "--since", "1h").stdout
    assert "jp3" in everything and "jp1" in everything  # a first verdict starts a mirror's history
    assert run_events(config_dir, "--since", "0s").stdout == ""
    bad = run_events(config_dir, "--since", "soon")
    assert bad.returncode == 2 and "'soon' is not a duration" in bad.stderr


def state(**ups: bool) -> HealthState:
    return HealthState(MappingProxyType({k: MirrorHealth(up, reason=f"r-{k}", since=time.time())
                                         for k, up in ups.items()}))


def test_only_changes_are_events() -> None:
    before = state(a=True, b=True, c=False)
    after = state(a=True, b=False, c=True, d=False)
    assert [(e.key, e.up) for e in events.changes(before, after)] == [("b", False), ("c", True), ("d", False)]


def test_log_is_bounded_by_rotation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for i in range(2000):
        events.append(path, [events.Event(float(i), f"m{i}/debian-security", i % 2 == 0, "x" * 100)], limit=20_000)
    assert path.stat().st_size <= 20_000 and events.rotated(path).stat().st_size <= 20_000
    found = events.read(path)
    assert 100 < len(found) < 250 and found[-1].time == 1999.0  # the newest kept, oldest first
    assert found[-1].mirror == "m1999" and found[-1].archive == "debian-security"
    with path.open("a") as handle:
        handle.write("not json\n[1, 2]\n{\"time\": \"x\"}\n")  # a hand edit: skipped, not fatal
    assert events.read(path)[-1].time == 1999.0
    assert [e.time for e in events.read(path, since=1990.0)] == [float(t) for t in range(1990, 2000)]
