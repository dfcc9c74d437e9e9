"""Process roles and the serving snapshot, end to end: workers serve the very table the supervisor (and
`explain`) builds, die with their supervisor, are replaced when stuck; one instance per port and state
folder; `reload` never signals a stale pid; a reload under load never sends a client to another table."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import dns.edns
import dns.exception
import dns.message
import pytest

from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.pool import Pool
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import load
from dnsbalance.statefiles import StateFolder
from dnsbalance.health import state as health_state
from tests.harness import ROOT, Server, processes_of, settled, start_server

JP_SUBNET = "1.0.16.0/24"
BIG_POOL = 40  # mirrors in the pool: far more orders than are precomputed, so the seed picks them


def big_jp_pool(config_dir: Path) -> None:
    mirrors = (config_dir / "mirrors.yaml").read_text()
    extra = "".join(f"  big{i}: {{addresses: [192.0.2.{100 + i}]}}\n" for i in range(BIG_POOL))
    (config_dir / "mirrors.yaml").write_text(mirrors + extra)
    (config_dir / "country" / "JP.yaml").write_text(
        "deb:\n" + "".join(f"  big{i}: {i * 200}\n" for i in range(BIG_POOL)))


def answer_bytes(server: Server) -> bytes:
    """The answer section of one reply as it came off the wire (everything after the question)."""
    query = dns.message.make_query("deb.cdn.example.org", "A", use_edns=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # a new source port: any worker
        sock.settimeout(3)
        sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
        reply = sock.recv(4096)
    question_end = 12 + len(query.question[0].name.to_wire()) + 4
    return reply[question_end:]


def test_workers_and_explain_serve_one_table_byte_for_byte(tmp_path: Path, config_dir: Path) -> None:
    big_jp_pool(config_dir)
    # Clients without ECS come from 127.0.0.1, which no country claims: point default at the big pool.
    (config_dir / "default.yaml").write_text((config_dir / "country" / "JP.yaml").read_text())
    server = start_server(config_dir, tmp_path / "log", ipv6=False, extra=("--workers", "2"))
    try:
        server.wait_for_log(r"table generation \d+ in service")
        time.sleep(1.0)  # the workers take the supervisor's inputs
        seen = {answer_bytes(server) for _ in range(400)}
        state = StateFolder(config_dir / "state")
        served = json.loads(state.serving.read_text())
    finally:
        server.stop()
    loaded, _ = load(config_dir)
    assert loaded is not None and served["digest"] == loaded.digest
    # What explain builds from the same files and the saved state.
    mine = Balancer(loaded, health=health_state.load(state.health), generation=served["generation"] - 1)
    pool = mine.table.default.usable[("deb", RType.A)]
    variants = mine.table.variants(pool, RType.A)
    possible = {v.wire for v in variants.all()}
    # The test can tell tables apart: one weight more in the pool gives other answers.
    first = pool.candidates[0]
    changed = Pool(pool.region, (replace(first, weight=first.weight + 1), *pool.candidates[1:]))
    assert {v.wire for v in mine.table.variants(changed, RType.A).all()} != possible
    assert len(seen) > 20
    assert seen <= possible, f"{len(seen - possible)} answers from a table other than the supervisor's"


def test_supervisor_killed_leaves_no_worker_answering(tmp_path: Path, config_dir: Path) -> None:
    server = start_server(config_dir, tmp_path / "log", ipv6=False, extra=("--workers", "2"))
    settled(server)
    workers = processes_of(server)
    assert len(workers) == 2 and server.query("deb.cdn.example.org").answer
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    deadline = time.monotonic() + 3
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
              for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its supervisor by 3 s"
        time.sleep(0.05)
    with pytest.raises(dns.exception.Timeout):
        server.query("deb.cdn.example.org")


def test_stopped_worker_is_noticed_and_replaced(tmp_path: Path, config_dir: Path) -> None:
    server = start_server(config_dir, tmp_path / "log", ipv6=False, extra=("--workers", "2"))
    try:
        settled(server)
        victim = min(processes_of(server))
        os.kill(victim, signal.SIGSTOP)
        server.wait_for_log(r"worker \d \(pid %d\) has not answered for" % victim, timeout=10)
        deadline = time.monotonic() + 10
        while victim in processes_of(server) or len(processes_of(server)) < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        time.sleep(1.0)  # the new worker binds and reports ready
        for _ in range(60):  # new source ports each time: both workers are reached
            assert server.query("deb.cdn.example.org").answer
    finally:
        server.stop()


def test_second_instance_refused_on_the_same_port(tmp_path: Path, config_dir: Path, country_mmdb: Path) -> None:
    from tests.harness import make_config

    first = start_server(config_dir, tmp_path / "log", ipv6=False, extra=("--workers", "2"))
    try:
        other = make_config(tmp_path / "other", country_mmdb)  # its own state folder
        result = subprocess.run([sys.executable, "-m", "dnsbalance", "serve", "--config", str(other), "--listen",
                                 f"127.0.0.1:{first.port}", "--status", "off", "--workers", "2"],
                                capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert result.returncode != 0
        assert f"127.0.0.1:{first.port} (UDP) is already in use" in result.stderr
        assert first.query("deb.cdn.example.org").answer
    finally:
        first.stop()


def test_second_instance_refused_on_the_same_state_folder(tmp_path: Path, config_dir: Path) -> None:
    first = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        result = subprocess.run([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config_dir),
                                 "--listen", "127.0.0.1:0", "--status", "off"],
                                capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert result.returncode != 0
        assert f"another dnsbalance (pid {first.process.pid}) is running with the state folder" in result.stderr
    finally:
        first.stop()
    assert not (config_dir / "state" / "dnsbalance.pid").exists()  # removed on exit


def test_reload_against_a_stale_pid_file_signals_nothing(config_dir: Path) -> None:
    bystander = subprocess.Popen(["sleep", "30"])  # SIGHUP would end it
    try:
        state = config_dir / "state"
        state.mkdir()
        (state / "dnsbalance.pid").write_text(f"{bystander.pid}\n")
        result = subprocess.run([sys.executable, "-m", "dnsbalance", "reload", "--config", str(config_dir)],
                                capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert result.returncode == 3, result.stderr
        assert "no running dnsbalance" in result.stderr
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_reload_reports_refusal_from_the_server(server: Server, config_dir: Path) -> None:
    """The server's own verdict travels back: a file that breaks between check and SIGHUP is refused."""
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "reload", "--config", str(config_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 0 and "applied, table generation" in result.stdout, result.stderr
    outcome = json.loads((config_dir / "state" / "reload.json").read_text())
    assert outcome["applied"] and outcome["pid"] == server.process.pid


def test_reload_under_load_never_answers_from_another_table(server: Server, config_dir: Path) -> None:
    """Each reload opens a new GeoIP reader; a query caught between old and new must still be located."""
    jp = {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}
    wrong: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load_loop() -> None:
        query = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0,
                                       options=[dns.edns.ECSOption("1.0.16.0", 24)])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            while not stop.is_set():
                sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
                try:
                    reply = dns.message.from_wire(sock.recv(4096))
                except socket.timeout:
                    continue
                addresses = {rr.address for rrset in reply.answer for rr in rrset}
                if not addresses <= jp:
                    wrong.append(" ".join(sorted(addresses)))
                answered[0] += 1

    threads = [threading.Thread(target=load_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(1, 9):
            server.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while server.log().count("configuration reloaded") < round_:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert answered[0] > 200
    assert wrong == []
