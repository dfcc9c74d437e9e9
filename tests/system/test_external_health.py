"""Observations from outside the prober (state/external-health, health/external.py) against the real server:
a mirror leaves and returns the answers as the file says, through fall/rise or final."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, Server, answer_set, probe_everything, start_server, wait_cycles
from tests.mirrors import Mirror

JP = {"jp1": "192.0.2.1", "jp2": "192.0.2.2", "jp3": "192.0.2.3", "jp4": "192.0.2.4"}


def jp_answers(server: Server, rounds: int = 200) -> set[str]:  # jp4 is in ~1 answer in 8
    return answer_set(server, rounds)


def test_a_file_takes_a_mirror_out_and_back(tmp_path: Path, config_dir: Path, zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet, rise=2)
    external = config_dir / "state" / "external-health"
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 1)
        assert jp_answers(server) == set(JP.values())

        # through the rules: one more failed probe; fall is 1, so out at the next cycle
        external.write_text("# written by a test\njp3: down   # disk full, says the mirror's admin\n")
        wait_cycles(server, 2)  # the first may have started before the write
        assert f"jp3 is DOWN: down in {external}:2: disk full, says the mirror's admin" in server.log()
        assert jp_answers(server) == {JP["jp1"], JP["jp2"], JP["jp4"]}

        # back through the rules: rise is 2, so two good cycles
        external.write_text("jp3: up\n")
        wait_cycles(server, 3)
        assert "jp3 is UP" in server.log()
        assert jp_answers(server) == set(JP.values())

        # final: out at once whatever the probes say, and back as soon as the line goes (the state it left
        # was down, so rise applies again from there)
        external.write_text("jp1: down final\nnosuch: down\njp2: sideways\n")
        wait_cycles(server, 2)
        assert f"jp1 is DOWN: down (final) in {external}:1" in server.log()
        assert f"{external}:2 names 'nosuch', which is no mirror, relay or health key" in server.log()
        assert f"{external} line 3: jp2: expected `up` or `down`" in server.log()
        assert jp_answers(server) == {JP["jp2"], JP["jp3"], JP["jp4"]}
        external.unlink()
        wait_cycles(server, 3)
        assert jp_answers(server) == set(JP.values())
        assert server.log().count(f"{external} line 3") == 1  # a bad file is told once, not every cycle
    finally:
        server.stop()


def test_probe_lists_what_the_file_says(config_dir: Path, zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet)
    external = config_dir / "state" / "external-health"
    external.parent.mkdir(exist_ok=True)
    external.write_text("jp3: down final  # by hand\n")
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--config", str(config_dir)],
                            check=False, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"from outside the prober: jp3 down (final) in {external}:1: by hand" in result.stdout.splitlines()
