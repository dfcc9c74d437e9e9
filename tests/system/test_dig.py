"""The same server through dig, the client operators use."""
from __future__ import annotations

import subprocess

from tests.harness import Server


def dig(server: Server, *args: str) -> str:
    result = subprocess.run(["dig", "@127.0.0.1", "-p", str(server.port), "+time=2", "+tries=1", *args],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_dig_a_with_subnet(shared_server: Server) -> None:
    out = dig(shared_server, "deb.cdn.example.org", "A", "+subnet=1.0.16.0/24")
    assert "status: NOERROR" in out
    assert "flags: qr aa rd;" in out  # authoritative, RD copied, no RA
    assert "CLIENT-SUBNET: 1.0.16.0/24/20" in out
    answers = [line.split()[-1] for line in out.splitlines() if "\tIN\tA\t" in line]
    # up to answers (3): JP's weights allow two or three addresses with exact shares (issue 11)
    assert 2 <= len(answers) <= 3 and set(answers) <= {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}


def test_dig_tcp_nxdomain_and_refused(shared_server: Server) -> None:
    assert "status: NXDOMAIN" in dig(shared_server, "+tcp", "missing.cdn.example.org", "A")
    assert "status: REFUSED" in dig(shared_server, "www.example.com", "A")


def test_dig_short_soa(shared_server: Server) -> None:
    out = dig(shared_server, "+short", "cdn.example.org", "SOA").split()
    assert out[:2] == ["ns1.cdn.example.org.", "hostmaster.example.org."]
