"""SIGHUP: a good configuration is swapped in; a bad one is refused with file:line and the old one stays."""
from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.harness import Server


def answer_set(server: Server, rounds: int = 200) -> set[str]:  # jp4 is in ~1 answer in 8
    found: set[str] = set()
    for _ in range(rounds):
        reply = server.query("deb.cdn.example.org", subnet="1.0.16.0/24")
        found |= {rr.address for rrset in reply.answer for rr in rrset}
    return found


def reload_and_wait(server: Server, marker: str, count: int) -> None:
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while server.log().count(marker) < count:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def test_sighup_applies_good_and_refuses_bad_config(server: Server, config_dir: Path) -> None:
    assert answer_set(server) == {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}

    (config_dir / "country" / "JP.yaml").write_text("deb:\n  jp1: 0\n  jp2: 10000\n")
    reload_and_wait(server, "configuration reloaded", 1)
    assert answer_set(server) == {"192.0.2.1"}

    (config_dir / "country" / "JP.yaml").write_text("deb:\n  jp1: 0\n  nosuch: 5\n")
    (config_dir / "mirrors.yaml").write_text("mirrors: [broken\n")
    reload_and_wait(server, "reload refused", 2)
    log = server.log()
    assert f"reload refused: {config_dir}/mirrors.yaml:2: YAML syntax error" in log
    assert f"reload refused: {config_dir}/country/JP.yaml:3: deb: unknown mirror 'nosuch'" in log
    assert answer_set(server) == {"192.0.2.1"}  # the running table stays
    assert server.process.poll() is None
