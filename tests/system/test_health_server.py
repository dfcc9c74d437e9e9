"""The server with live health checks: real HTTP mirrors on 127.0.0.1, cycles every second."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tests.harness import Server, probe_everything, start_server, wait_cycles
from tests.mirrors import Mirror

JP = {"jp1": "192.0.2.1", "jp2": "192.0.2.2", "jp3": "192.0.2.3", "jp4": "192.0.2.4"}
AS = {"192.0.2.11", "192.0.2.12"}


def jp_answers(server: Server, rounds: int = 25) -> set[str]:
    found: set[str] = set()
    for _ in range(rounds):
        reply = server.query("deb.cdn.example.org", subnet="1.0.16.0/24")
        assert reply.answer, "a configured name is never answered empty"
        found |= {rr.address for rr in reply.answer[0]}
    return found


def test_dead_and_stale_mirrors_leave_and_return(tmp_path: Path, config_dir: Path,
                                                 zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet, rise=2)
    zone_fleet["jp3"].behaviour = "stale"
    zone_fleet["jp4"].stop()
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 1)
        assert jp_answers(server) == {JP["jp1"], JP["jp2"]}
        assert "jp4 is DOWN: cannot connect" in server.log()
        assert "jp3 is DOWN: stale: serial 2026112100" in server.log()

        zone_fleet["jp4"].start()  # back on the same port; rise: 2 means two good cycles first
        wait_cycles(server, 1)
        wait_cycles(server, 2)
        assert "jp4 is UP" in server.log()
        assert jp_answers(server, 200) == {JP["jp1"], JP["jp2"], JP["jp4"]}  # jp4: ~1 answer in 8

        state = json.loads((config_dir / "state" / "health.json").read_text())
        assert state["mirrors"]["jp3"]["up"] is False and state["mirrors"]["jp4"]["up"] is True
        table = (config_dir / "state" / "table.txt").read_text()
        assert re.search(r"country:JP\tdeb\tA\n(\t.*\n)*\tjp1\tweight 9000", table)
        assert "\tjp3\t" not in table.split("continent:")[0]
    finally:
        server.stop()


def test_country_down_uses_continent_and_all_down_keeps_table(tmp_path: Path, config_dir: Path,
                                                              zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet)
    for name in JP:
        zone_fleet[name].behaviour = "error500"
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 1)
        assert jp_answers(server) == AS

        for name, mirror in zone_fleet.items():
            if name != "master":
                mirror.behaviour = "error500"
        wait_cycles(server, 2)
        assert "every probed mirror failed this cycle" in server.log()
        assert jp_answers(server) == AS  # the previous table stays
    finally:
        server.stop()


def test_restart_remembers_down_mirrors(tmp_path: Path, config_dir: Path, zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet)
    for name in JP:
        zone_fleet[name].behaviour = "stale"
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 1)
    finally:
        server.stop()
    # Restart with probing off: no cycle will run, so only the saved state can keep JP out.
    settings = config_dir / "dnsbalance.yaml"
    settings.write_text(settings.read_text().replace("health: {interval: 1,", "health: {enabled: false, interval: 1,"))
    server = start_server(config_dir, tmp_path / "log2", ipv6=False)
    try:
        assert "health checks are off" in server.log()
        assert jp_answers(server) == AS
    finally:
        server.stop()


def test_changed_file_is_picked_up_at_next_cycle(tmp_path: Path, config_dir: Path,
                                                 zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet)
    with (config_dir / "dnsbalance.yaml").open("a") as handle:
        handle.write("reload: {auto_apply: true}\n")  # off by default: see tests/system/test_auto_apply.py
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 1)
        (config_dir / "country" / "JP.yaml").write_text("deb:\n  jp2: 0\n")
        wait_cycles(server, 2)  # the first may have started before the write
        assert "configuration files changed; reloading" in server.log()
        assert jp_answers(server) == {JP["jp2"]}
    finally:
        server.stop()
