"""Relays end to end: two real coturn servers, a dead port and two broken STUN responders;
SRV answers per region (via ECS) with glue; a stopped coturn leaves after a cycle and returns."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import dns.message
import dns.rdatatype
import pytest

from tests.harness import ROOT, Server, start_server
from tests.relays import Coturn, UdpResponder, free_port


@pytest.fixture(scope="module")
def relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("relays")
    found = {"coturn1": Coturn(base / "c1"), "coturn2": Coturn(base / "c2"),
             "garbage": UdpResponder("garbage"), "wrongid": UdpResponder("wrongid"), "dead": free_port()}
    yield found
    for value in found.values():
        if hasattr(value, "stop"):
            value.stop()


def relay_config(config_dir: Path, relays: dict, interval: int = 1) -> Path:
    c1, c2 = relays["coturn1"], relays["coturn2"]
    (config_dir / "mirrors.yaml").write_text((config_dir / "mirrors.yaml").read_text() + f"""relays:
  coturn1: {{addresses: [127.0.0.1], stun: {c1.port}, turn: {{udp: {c1.port}, tcp: {c1.port}, tls: {c1.tls_port}}}}}
  coturn2: {{addresses: [127.0.0.1], stun: {c2.port}, turn: {{udp: {c2.port}, tcp: {c2.port}, tls: {c2.tls_port}}}}}
  garbage: {{addresses: [127.0.0.1], stun: {relays["garbage"].port}}}
  wrongid: {{addresses: [127.0.0.1], stun: {relays["wrongid"].port}}}
  dead: {{addresses: [127.0.0.1], stun: {relays["dead"]}}}
""")
    with (config_dir / "country" / "JP.yaml").open("a") as handle:
        handle.write("_stun._udp: {coturn1: 10, coturn2: 10, dead: 10}\n"
                     "_turns._tcp: {coturn1: 1000, coturn2: {priority: 10, tier: 1}}\n"
                     "_turn._tcp: {coturn1: 0}\n")
    with (config_dir / "continent" / "EU.yaml").open("a") as handle:
        handle.write("_stun._udp: {garbage: 0, wrongid: 0, coturn2: 5000}\n")
    with (config_dir / "default.yaml").open("a") as handle:
        handle.write("_stun._udp: {coturn1: 0}\n")
    with (config_dir / "dnsbalance.yaml").open("a") as handle:
        handle.write(f"health: {{interval: {interval}, timeout: 0.5}}\n")
    return config_dir


def srv(server: Server, name: str, subnet: str | None = None) -> tuple[list[tuple[int, int, int, str]], dict]:
    reply = server.query(name, "SRV", subnet=subnet)
    records = sorted((rr.priority, rr.weight, rr.port, str(rr.target)) for rrset in reply.answer for rr in rrset)
    glue = {str(rrset.name): [rr.address for rr in rrset] for rrset in reply.additional
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)}
    return records, glue


def wait_cycles(server: Server, count: int) -> None:
    server.wait_cycles(count, timeout=15)


def test_probe_shows_relay_verdicts(config_dir: Path, relays: dict) -> None:
    relay_config(config_dir, relays)
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--config", str(config_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:-1]}
    for service in ("stun", "turn-udp", "turn-tcp", "turn-tls"):
        assert " ok " in rows[f"coturn1/{service}"] and "STUN Binding ok, mapped 127.0.0.1:" in rows[f"coturn1/{service}"]
    assert "FAIL" in rows["dead/stun"] and "cannot connect: Connection refused" in rows["dead/stun"]
    assert "reply is not STUN" in rows["garbage/stun"]
    assert "wrong transaction id" in rows["wrongid/stun"]
    assert "8 of 11 relay services usable" in result.stdout


def test_srv_by_region_with_glue_and_relay_failover(tmp_path: Path, config_dir: Path, relays: dict) -> None:
    c1, c2 = relays["coturn1"], relays["coturn2"]
    server = start_server(relay_config(config_dir, relays), tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 1)
        jp, glue = srv(server, "_stun._udp.cdn.example.org", "1.0.16.0/24")
        assert jp == sorted([(0, 65469, c1.port, "coturn1.relay.cdn.example.org."),
                             (0, 65469, c2.port, "coturn2.relay.cdn.example.org.")])  # dead is gone
        assert glue == {"coturn1.relay.cdn.example.org.": ["127.0.0.1"],
                        "coturn2.relay.cdn.example.org.": ["127.0.0.1"]}
        eu, _ = srv(server, "_stun._udp.cdn.example.org", "2.0.0.0/24")
        assert eu == [(0, 32767, c2.port, "coturn2.relay.cdn.example.org.")]  # garbage, wrongid gone
        default, _ = srv(server, "_stun._udp.cdn.example.org")
        assert default == [(0, 65535, c1.port, "coturn1.relay.cdn.example.org.")]
        turns, _ = srv(server, "_turns._tcp.cdn.example.org", "1.0.16.0/24")
        assert turns == [(0, 58981, c1.tls_port, "coturn1.relay.cdn.example.org."),
                         (1, 65469, c2.tls_port, "coturn2.relay.cdn.example.org.")]  # tier 1: backup
        target = server.query("coturn2.relay.cdn.example.org", "A")
        assert [rr.address for rr in target.answer[0]] == ["127.0.0.1"]

        c1.stop()
        wait_cycles(server, 2)  # the first may have started before the stop
        jp, glue = srv(server, "_stun._udp.cdn.example.org", "1.0.16.0/24")
        assert jp == [(0, 65469, c2.port, "coturn2.relay.cdn.example.org.")]
        assert list(glue) == ["coturn2.relay.cdn.example.org."]
        turn_tcp, _ = srv(server, "_turn._tcp.cdn.example.org", "1.0.16.0/24")
        assert turn_tcp == [(0, 65535, c1.port, "coturn1.relay.cdn.example.org.")]  # nothing usable: fail open
        assert "FAIL OPEN" in server.log()

        c1.start()
        wait_cycles(server, 2)
        jp, _ = srv(server, "_stun._udp.cdn.example.org", "1.0.16.0/24")
        assert {r[3] for r in jp} == {"coturn1.relay.cdn.example.org.", "coturn2.relay.cdn.example.org."}, server.log()
    finally:
        server.stop()
        if relays["coturn1"].process is None:  # leave the module's relays as they were
            relays["coturn1"].start()


def test_check_rejects_relay_without_the_port(config_dir: Path, relays: dict) -> None:
    relay_config(config_dir, relays)
    with (config_dir / "default.yaml").open("a") as handle:
        handle.write("_turn._udp: {garbage: 0}\n_turns._tcp: {coturn1: {priority: 1, tier: 1, colour: red}}\n")
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "check", "--config", str(config_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    assert f"{config_dir}/default.yaml:9: _turn._udp: relay 'garbage' defines no turn udp port" in result.stdout
    assert "unknown key 'colour'" in result.stdout
