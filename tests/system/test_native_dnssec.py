"""The native fast path on a signed zone (issues 25 and 27): the real server with `dnssec: {sign: true}`, DO queries
from clients of several regions (answers A and AAAA, NXDOMAIN, NODATA) asked again and again so that their shapes
are learnt; the server's metrics say the repeats were answered natively, its status counts every query, and every
reply validates against the zone's DNSKEY with dnspython."""
from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnsbalance.answer import native
from tests.harness import Server, start_server
from tests.signed_zone import REGIONS, dnsbalance, signed_zone
from tests.unbound import ZONE

REPEATS = 12  # per shape: the first two go to the Python path (a shape is learnt at its second miss)
# (name, type, rcode), asked with DO from each region's client
SHAPES = [(f"deb.{ZONE}", "A", dns.rcode.NOERROR), (f"deb.{ZONE}", "AAAA", dns.rcode.NOERROR),
          (ZONE, "A", dns.rcode.NOERROR), (f"nosuch.{ZONE}", "A", dns.rcode.NXDOMAIN),
          (f"x.y.deep.{ZONE}", "AAAA", dns.rcode.NXDOMAIN), (f"deep.{ZONE}", "A", dns.rcode.NOERROR)]


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("native-dnssec")
    config = signed_zone(base / "config")
    assert dnsbalance("dnssec", "keygen", "--config", str(config)).returncode == 0
    server = start_server(config, base / "server.log", ipv6=False)
    yield server
    server.stop()


def status(server: Server) -> dict:
    return json.loads(urllib.request.urlopen(server.status_url + "/status.json", timeout=5).read())


def native_answers(server: Server) -> float:
    metrics = urllib.request.urlopen(server.status_url + "/metrics", timeout=5).read().decode()
    return float(metrics.split("\ndnsbalance_native_answers_total ")[1].split()[0])


def validated(message: dns.message.Message, keys: dns.rrset.RRset) -> int:
    """Every RRset of answer and authority validated with its RRSIG against the zone's DNSKEY: how many."""
    zone = dns.name.from_text(ZONE)
    checked = 0
    for section in (message.answer, message.authority):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sig = next(r for r in section if r.rdtype == dns.rdatatype.RRSIG and r.name == rrset.name
                       and r.covers == rrset.rdtype)
            dns.dnssec.validate(rrset, sig, {zone: keys})
            checked += 1
    return checked


def test_signed_do_queries_are_answered_natively_and_validate(signed_server: Server) -> None:
    running = native.describe()["path"]  # native, unless not built or DNSBALANCE_NATIVE=0
    assert f"UDP fast path: {running}" in signed_server.log()
    keys_query = dns.message.make_query(ZONE, "DNSKEY", want_dnssec=True)
    keys = dns.query.tcp(keys_query, "127.0.0.1", port=signed_server.port, timeout=5).answer[0]
    before_total, before_native = status(signed_server)["queries"]["total"], native_answers(signed_server)
    sent = 0
    answers_seen: dict[tuple[str, str], set[frozenset[str]]] = {}
    for region, (client, _) in REGIONS.items():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.bind((client, 0))  # the region's client (tests/signed_zone.py's GeoIP database)
            for name, rdtype, rcode in SHAPES:
                for attempt in range(REPEATS):
                    ident = (sent * 7 + attempt) & 0xFFFF
                    query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232, id=ident)
                    sock.sendto(query.to_wire(), ("127.0.0.1", signed_server.port))
                    reply = dns.message.from_wire(sock.recv(4096))
                    sent += 1
                    assert reply.id == ident and reply.rcode() == rcode and not reply.flags & dns.flags.TC
                    assert reply.ednsflags & dns.flags.DO
                    assert validated(reply, keys) >= 1  # every RRset signed, every signature valid
                    if rcode == dns.rcode.NOERROR and reply.answer:
                        assert any(r.rdtype == dns.rdatatype.RRSIG for r in reply.answer)
                        answers_seen.setdefault((region, rdtype), set()).add(
                            frozenset(str(r) for r in reply.answer[0]))
                    else:  # NXDOMAIN and NODATA: the SOA and its NSECs, each signed
                        assert any(r.rdtype == dns.rdatatype.NSEC for r in reply.authority)
    assert {region for region, _ in answers_seen} == set(REGIONS)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and status(signed_server)["queries"]["total"] - before_total < sent:
        time.sleep(0.5)  # native counts join the others when the answerer folds them
    assert status(signed_server)["queries"]["total"] - before_total == sent  # every one counted, native or not
    natively = native_answers(signed_server) - before_native
    if running == "native":
        # every shape from the third query on (one answerer: its shapes learn each at the second miss)
        assert natively >= len(REGIONS) * len(SHAPES) * (REPEATS - 2)
    else:
        assert natively == 0
