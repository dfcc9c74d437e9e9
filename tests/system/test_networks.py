"""Network and AS tables over the real server: UDP and TCP, with and without ECS, IPv4 and IPv6; the ECS
scope each answer carries; scope 0 where no client location changes the answer."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.harness import ROOT, Server, make_config, start_server, write_asn_mmdb

CAMPUS = {"10.9.9.1", "2001:db8:c::1"}
ISP = {"10.9.9.2", "2001:db8:c::2"}
ASN = {"10.9.9.3", "2001:db8:c::3"}
JP = {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}


def network_config(target: Path, country_mmdb: Path) -> Path:
    """The test zone plus: network/campus.yaml (a /25 and a /48 inside the ISP's), network/isp.yaml,
    network/lab.yaml (loopback sources), asn/AS64500.yaml and the ASN database."""
    config = make_config(target, country_mmdb)
    write_asn_mmdb(config / "asn.mmdb")
    text = (config / "dnsbalance.yaml").read_text().replace("  ecs: true\n", "  ecs: true\n  asn_database: asn.mmdb\n")
    (config / "dnsbalance.yaml").write_text(text)
    with (config / "mirrors.yaml").open("a") as f:
        f.write('  campus1: {addresses: [10.9.9.1, "2001:db8:c::1"]}\n'
                '  isp1: {addresses: [10.9.9.2, "2001:db8:c::2"]}\n'
                '  asn1: {addresses: [10.9.9.3, "2001:db8:c::3"]}\n')
    (config / "network").mkdir()
    (config / "network" / "campus.yaml").write_text(
        'networks: [1.0.16.128/25, "2001:200:1::/48"]\ndeb:\n  campus1: 0\n')
    (config / "network" / "isp.yaml").write_text(
        'networks: [1.0.16.0/22]\ndeb:\n  isp1: 0\n"@":\n  isp1: 0\n')
    (config / "network" / "lab.yaml").write_text(
        'networks: [127.0.0.4/32, "::1/128"]\ndeb:\n  campus1: 0\n')
    (config / "asn").mkdir()
    (config / "asn" / "AS64500.yaml").write_text("deb:\n  asn1: 0\n")
    return config


@pytest.fixture(scope="module")
def net_server(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("networks")
    running = start_server(network_config(base / "config", country_mmdb), base / "server.log")
    yield running
    running.stop()


def answer(reply: dns.message.Message) -> set[str]:
    return {rr.address for rrset in reply.answer for rr in rrset if rrset.rdtype in (dns.rdatatype.A,
                                                                                      dns.rdatatype.AAAA)}


def scope(reply: dns.message.Message) -> int:
    (ecs,) = [o for o in reply.options if o.otype == dns.edns.ECS]
    return ecs.scopelen


TCP = pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])


@TCP
@pytest.mark.parametrize("subnet,rdtype,expected,expected_scope", [
    # inside the campus /25, itself inside the ISP's /22: the longest prefix wins
    ("1.0.16.128/25", "A", CAMPUS, 25),
    # the ISP's /22 but not the campus /25: the scope must not reach into the campus half
    ("1.0.16.0/24", "A", ISP, 25),
    ("1.0.17.0/24", "A", ISP, 24),
    # outside every network: GeoIP's /20 would cover the ISP's /22, so the scope is /22 instead
    ("1.0.20.0/24", "A", JP, 22),
    # the client's AS (5.0.0.0/16, AS64500) before its country KR
    ("5.0.1.0/24", "A", ASN, 16),
    ("2001:200:1::/48", "AAAA", CAMPUS, 48),
    # beside the campus /48 in GeoIP's 2001:200::/32: long enough to leave the campus out
    ("2001:200:2::/48", "AAAA", {"2001:db8::1", "2001:db8::2"}, 47),
    ("2a00:1000:1::/48", "AAAA", ASN, 32),
    # IPv4-mapped IPv6 subnets: matched as IPv4, the scope counted in IPv6 bits
    ("::ffff:1.0.16.128/121", "A", CAMPUS, 96 + 25),
    ("::ffff:1.0.20.0/120", "A", JP, 96 + 22),
    ("::ffff:5.0.1.0/120", "A", ASN, 96 + 16),
])
def test_subnet_selects_network_or_as_table_with_a_safe_scope(net_server: Server, tcp: bool, subnet: str,
                                                              rdtype: str, expected: set[str],
                                                              expected_scope: int) -> None:
    for _ in range(2):  # the second answer comes from the fast path's prepared reply
        reply = net_server.query("deb.cdn.example.org", rdtype, subnet=subnet, tcp=tcp)
        assert answer(reply) <= expected and answer(reply), (subnet, answer(reply))
        assert scope(reply) == expected_scope


@TCP
def test_network_table_falls_back_per_name_to_the_wider_network(net_server: Server, tcp: bool) -> None:
    # campus.yaml lacks the apex; isp.yaml (the enclosing /22) has it
    reply = net_server.query("cdn.example.org", "A", subnet="1.0.16.128/25", tcp=tcp)
    assert answer(reply) == {"10.9.9.2"}
    assert scope(reply) == 25


@TCP
@pytest.mark.parametrize("source,host,rdtype,expected", [
    ("127.0.0.4", "127.0.0.1", "A", CAMPUS),  # network/lab.yaml lists 127.0.0.4/32
    ("::1", "::1", "AAAA", CAMPUS),  # and ::1/128
    ("127.0.0.5", "127.0.0.1", "A", ASN),  # AS64500 by the ASN database
    ("127.0.0.2", "127.0.0.1", "A", JP),  # no network, no AS table: its country
])
def test_resolver_address_selects_without_ecs(net_server: Server, tcp: bool, source: str, host: str, rdtype: str,
                                              expected: set[str]) -> None:
    for edns in (None, 0):
        reply = net_server.query("deb.cdn.example.org", rdtype, source=source, host=host, tcp=tcp, edns=edns)
        assert answer(reply) and answer(reply) <= expected
        assert not [o for o in reply.options if o.otype == dns.edns.ECS]


@TCP
@pytest.mark.parametrize("name,rdtype,rcode", [
    ("nosuch.cdn.example.org", "A", dns.rcode.NXDOMAIN),
    ("deb.cdn.example.org", "TXT", dns.rcode.NOERROR),  # NODATA
    ("cdn.example.org", "SOA", dns.rcode.NOERROR),
    ("cdn.example.org", "NS", dns.rcode.NOERROR),
    ("_sub.deep.cdn.example.org", "A", dns.rcode.NOERROR),  # only default.yaml lists it
])
def test_answers_no_location_changes_echo_scope_zero(net_server: Server, tcp: bool, name: str, rdtype: str,
                                                    rcode: int) -> None:
    for _ in range(2):
        reply = net_server.query(name, rdtype, subnet="1.0.16.128/25", tcp=tcp)
        assert reply.rcode() == rcode
        assert scope(reply) == 0


def test_ipv4_mapped_subnet_scope_counts_ipv6_bits(shared_server: Server) -> None:
    reply = shared_server.query("deb.cdn.example.org", "A", subnet="::ffff:1.0.16.0/120")
    assert answer(reply) and scope(reply) == 96 + 20


def test_explain_names_the_network_and_the_as(tmp_path: Path, country_mmdb: Path) -> None:
    config = network_config(tmp_path / "config", country_mmdb)

    def explain(client: str) -> str:
        result = subprocess.run([sys.executable, "-m", "dnsbalance", "explain", "--config", str(config), client,
                                 "deb"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    out = explain("1.0.16.200")
    assert "client: network campus, isp; AS64501, country JP, continent AS" in out
    assert "  network campus (the client is inside 1.0.16.128/25): table" in out
    assert "  network isp (the client is inside 1.0.16.0/22): table" in out
    assert "A: answered from the network campus table" in out
    out = explain("5.0.1.1")
    assert "  AS64500 (from the ASN database): table" in out
    assert "A: answered from the asn AS64500 table" in out
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "check", "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and "3 network and 1 AS tables" in result.stdout, result.stdout


def test_status_page_lists_network_and_as_tables(net_server: Server) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{net_server.status_url}/status.json", timeout=5) as response:
        status = json.load(response)
    selects = {r["region"]: r["selects"] for r in status["regions"]}
    assert selects["network campus"] == "clients inside 1.0.16.128/25, 2001:200:1::/48"
    assert selects["asn AS64500"] == "clients in AS64500 (ASN database asn.mmdb)"
