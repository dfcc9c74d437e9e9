"""Hostile input against a signed server: DO queries of every kind (answers, NODATA, NXDOMAIN, SRV, DNSKEY),
mutated at random, over UDP and TCP. The server never crashes or hangs, every reply that parses carries each
RRset of its answer and authority with an RRSIG when DO was kept, and a valid DO query is answered after."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Server, recv_frame, start_server
from tests.signed_zone import dnsbalance, signed_zone
from tests.unbound import ZONE

QUERIES = [dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232).to_wire() for name, rdtype in (
    (f"deb.{ZONE}", "A"), (f"deb.{ZONE}", "AAAA"), (f"deb.{ZONE}", "TXT"), (f"x.y.{ZONE}", "A"),
    (f"_http._tcp.deb.{ZONE}", "SRV"), (ZONE, "DNSKEY"), (ZONE, "NS"), (f"v4.{ZONE}", "AAAA"))]


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("signed-fuzz")
    config = signed_zone(base / "config")
    assert dnsbalance("dnssec", "keygen", "--config", str(config)).returncode == 0
    server = start_server(config, base / "server.log", ipv6=False)
    yield server
    server.stop()


def udp(server: Server, packet: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, ("127.0.0.1", server.port))
        try:
            return sock.recv(65535)
        except socket.timeout:
            return None


def signed_sections(reply: bytes) -> None:
    """A reply that parses and says DO: every RRset of answer and authority has its RRSIG beside it."""
    try:
        message = dns.message.from_wire(reply)
    except dns.exception.DNSException:
        return  # a reply to a mangled question can be odd itself (FORMERR echo): parsing is not the point
    if not message.ednsflags & dns.flags.DO or message.flags & dns.flags.TC:
        return
    for section in (message.answer, message.authority):
        covered = {(r.name, r.covers) for r in section if r.rdtype == dns.rdatatype.RRSIG}
        for rrset in section:
            if rrset.rdtype != dns.rdatatype.RRSIG:
                assert (rrset.name, rrset.rdtype) in covered, message


def alive(server: Server) -> None:
    reply = dns.message.from_wire(udp(server, QUERIES[0]) or b"")
    assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer) == 2  # the A RRset and its RRSIG
    assert server.process.poll() is None


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out[: max(0, len(out) - cut)])


fuzz = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fuzz
@given(st.sampled_from(QUERIES), st.lists(st.tuples(st.integers(12, 400), st.integers(0, 255)), max_size=4),
       st.integers(0, 8), st.booleans())
def test_mutated_do_queries(signed_server: Server, query: bytes, edits: list[tuple[int, int]], cut: int,
                            tcp: bool) -> None:
    packet = mutate(query, edits, cut)
    if tcp:
        with socket.create_connection(("127.0.0.1", signed_server.port), timeout=2) as sock:
            sock.sendall(len(packet).to_bytes(2, "big") + packet)
            try:
                reply: bytes | None = recv_frame(sock)
            except (AssertionError, OSError):
                reply = None  # the server may close a connection that sent a malformed message
    else:
        reply = udp(signed_server, packet)
    if reply is not None:
        signed_sections(reply)
    alive(signed_server)
