"""serve --workers N: several processes on one port, one prober, every worker following the health."""
from __future__ import annotations

import re
import time
from pathlib import Path

from tests.harness import Server, probe_everything, settled, start_server
from tests.mirrors import Mirror


def processes_of(server: Server) -> set[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return {int(pid) for pid in children.read_text().split()} if children.exists() else set()


def test_workers_share_the_port_and_follow_one_prober(tmp_path: Path, config_dir: Path,
                                                     zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet)
    server = start_server(config_dir, tmp_path / "log", ipv6=False, extra=("--workers", "3"))
    try:
        assert "with 3 workers" in server.log()
        workers = processes_of(server)
        assert len(workers) >= 3
        before = zone_fleet["jp1"].requests
        cycles_before = server.cycles()
        time.sleep(3.2)
        cycles = server.cycles() - cycles_before
        probes = zone_fleet["jp1"].requests - before
        # one prober, not one per worker: each cycle GETs the stamp and ftpsync's lock file once
        assert cycles >= 2 and probes <= 2 * (cycles + 1)

        zone_fleet["jp1"].behaviour = "error500"
        server.wait_cycles(2, timeout=20)
        time.sleep(0.1)  # and the workers' SIGUSR1 rebuild
        seen: set[str] = set()
        for _ in range(200):  # new source ports each time: the kernel spreads them over the workers
            reply = server.query("deb.cdn.example.org", subnet="1.0.16.0/24")
            seen |= {rr.address for rr in reply.answer[0]}
        assert seen == {"192.0.2.2", "192.0.2.3", "192.0.2.4"}  # no worker still serves jp1
        assert server.query("deb.cdn.example.org", tcp=True).answer
        # the supervisor's status page adds up the workers' counters (written every few seconds)
        server.wait_counted(201, 15, "the workers' counters")
    finally:
        server.stop()
    time.sleep(0.5)
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_worker_restarted_after_a_crash(tmp_path: Path, config_dir: Path) -> None:
    import os
    import signal

    server = start_server(config_dir, tmp_path / "log", ipv6=False, extra=("--workers", "2"))
    try:
        settled(server)
        for victim in processes_of(server):
            os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not re.search(r"worker \d exited", server.log()):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        time.sleep(1.0)
        for _ in range(50):
            assert server.query("deb.cdn.example.org").answer
    finally:
        server.stop()
