"""SIGTERM at any moment ends the server cleanly (issue 22 item 6d): during status-page renders of a big table,
during a reload's build and during a health cycle, the server exits 0, promptly, with no traceback in its log."""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import Server, probe_everything, start_server, wait_cycles

STOPPED_WITHIN = 10.0  # seconds from SIGTERM to exit; a big render or build in a thread once held it a minute
NAMES, MIRRORS = 600, 60


def big_table(config_dir: Path) -> None:
    """A default table of NAMES names over MIRRORS mirrors: a status page that takes a while to make."""
    mirrors = (config_dir / "mirrors.yaml").read_text()
    (config_dir / "mirrors.yaml").write_text(mirrors + "".join(f"  big{i}: {{addresses: [192.0.2.{i}]}}\n"
                                                               for i in range(1, MIRRORS)))
    (config_dir / "default.yaml").write_text("deb:\n  def1: 1\n" + "".join(
        f"n{n}:\n" + "".join(f"  big{i}: {i}\n" for i in range(1 + n % 7, MIRRORS, 3)) for n in range(NAMES)))


def stopped_cleanly(server: Server) -> float:
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(30)
    seconds = time.monotonic() - started
    log = server.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "CancelledError" not in log, log[-5000:]
    assert "shutting down" in log
    return seconds


def test_sigterm_while_status_pages_render(config_dir: Path, tmp_path: Path) -> None:
    big_table(config_dir)
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    done = threading.Event()
    fetched = []

    def fetch() -> None:
        while not done.is_set():
            for path in ("/", "/status.json?page=0", "/status.json", "/metrics"):
                try:
                    fetched.append(httpx.get(server.status_url + path, timeout=10).status_code)
                except httpx.HTTPError:
                    pass
    threads = [threading.Thread(target=fetch, daemon=True) for _ in range(3)]
    try:
        server.wait_for_log("health cycle done", timeout=60)
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(fetched) < 6:  # pages being made when the signal comes
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert set(fetched) == {200}
        assert stopped_cleanly(server) < STOPPED_WITHIN
    finally:
        done.set()
        server.stop()


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_sigterm_during_a_reload(config_dir: Path, tmp_path: Path, delay: float) -> None:
    big_table(config_dir)
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        server.wait_for_log("health cycle done", timeout=60)
        (config_dir / "default.yaml").write_text((config_dir / "default.yaml").read_text().replace("big1: 1", "big1: 2"))
        server.process.send_signal(signal.SIGHUP)
        time.sleep(delay)
        assert stopped_cleanly(server) < STOPPED_WITHIN
    finally:
        server.stop()


def test_sigterm_during_a_long_reload_build_does_not_wait_for_it(config_dir: Path, tmp_path: Path) -> None:
    """A reload of a configuration whose check and build take tens of seconds (5,000 names over 120 mirrors),
    stopped two seconds in: the server exits within seconds, cleanly, leaving the build behind (it ran on a
    thread the stop used to wait for, issue 22's last leftover)."""
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        server.wait_for_log("health cycle done", timeout=60)
        mirrors = (config_dir / "mirrors.yaml").read_text()
        (config_dir / "mirrors.yaml").write_text(mirrors + "".join(
            f"  huge{i}: {{addresses: [127.0.1.{i}]}}\n" for i in range(1, 121)))
        (config_dir / "default.yaml").write_text("deb:\n  def1: 1\n" + "".join(
            f"n{n}:\n" + "".join(f"  huge{i}: {i}\n" for i in range(1 + n % 7, 121, 3)) for n in range(5000)))
        server.process.send_signal(signal.SIGHUP)
        time.sleep(2)
        seconds = stopped_cleanly(server)
        assert "configuration reloaded" not in server.log()  # the reload was still under way
        assert seconds < 4
    finally:
        server.stop()


def test_sigterm_during_health_cycles(config_dir: Path, tmp_path: Path, zone_fleet: dict) -> None:
    probe_everything(config_dir, zone_fleet)  # a cycle a second, probing real HTTP mirrors
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        wait_cycles(server, 2)
        log = server.log()
        while server.log() == log:  # the next cycle's first line: probes under way
            time.sleep(0.01)
        assert stopped_cleanly(server) < STOPPED_WITHIN
    finally:
        server.stop()
