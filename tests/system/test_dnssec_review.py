"""Regressions found by a black-box review of the signed zone (issue 25), each checked as an outside validator
sees it: BIND's `delv` with the zone's DS as its only trust anchor, or a validating unbound with it."""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.harness import Server, start_server
from tests.signed_zone import dnsbalance, signed_zone
from tests.unbound import ZONE, start_unbound

pytestmark = pytest.mark.skipif(shutil.which("delv") is None, reason="needs delv (bind9-dnsutils)")


def serve_signed(base: Path, edit: dict[str, tuple[str, str]] | None = None,
                 append: dict[str, str] | None = None) -> tuple[Server, Path]:
    """The signed fixture zone with `edit` (file -> (old, new)) and `append` (file -> text) applied, a key made,
    the server started; returns it and a delv anchor file holding the zone's DS."""
    config = signed_zone(base / "config")
    for name, (old, new) in (edit or {}).items():
        path = config / name
        assert old in path.read_text(), (name, old)
        path.write_text(path.read_text().replace(old, new))
    for name, text in (append or {}).items():
        with (config / name).open("a") as handle:
            handle.write(text)
    assert dnsbalance("dnssec", "keygen", "--config", str(config)).returncode == 0
    tag, algorithm, digest_type, digest = dnsbalance("dnssec", "ds", "--config", str(config)).stdout.split()[3:7]
    anchor = base / "anchor.conf"
    anchor.write_text(f'trust-anchors {{ "{ZONE}." static-ds {tag} {algorithm} {digest_type} "{digest}"; }};\n')
    return start_server(config, base / "server.log", ipv6=False), anchor


def delv(server: Server, anchor: Path, name: str, rdtype: str) -> str:
    run = subprocess.run(["delv", "@127.0.0.1", "-p", str(server.port), "-a", str(anchor), f"+root={ZONE}",
                          "+nomtrace", name, rdtype], capture_output=True, text=True, timeout=30, check=False)
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    server, anchor = serve_signed(tmp_path_factory.mktemp("review"))
    yield server, anchor
    server.stop()


@pytest.mark.parametrize("name", [ZONE, f"deb.{ZONE}"])
def test_a_query_for_nsec_at_an_existing_name_gets_the_nsec_and_validates(plain: tuple[Server, Path],
                                                                         name: str) -> None:
    """It was a NODATA whose own NSEC listed NSEC: SERVFAIL at every validator."""
    server, anchor = plain
    out = delv(server, anchor, name, "NSEC")
    assert out.startswith("; fully validated\n") and "\tIN\tNSEC\t" in out, out


def test_a_query_for_rrsig_at_an_existing_name_gets_its_rrsigs_through_a_validator(
        plain: tuple[Server, Path], tmp_path: Path) -> None:
    """It was a NODATA whose NSEC listed RRSIG: bogus. RRSIGs are not signed, so a validator passes an answer of
    them on unvalidated (unbound: "cannot validate RRSIG"); BIND's resolver does not look them up at all."""
    server, anchor = plain
    ds = dnsbalance("dnssec", "ds", "--config", str(anchor.parent / "config")).stdout.strip()
    resolver = start_unbound(tmp_path / "unbound", server.port, trust_anchor=ds)
    try:
        query = dns.message.make_query(f"deb.{ZONE}", "RRSIG", want_dnssec=True)
        reply = dns.query.udp(query, "127.0.0.1", port=resolver.port, timeout=10)
        assert reply.rcode() == dns.rcode.NOERROR, reply
        covered = {rr.type_covered for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG for rr in rrset}
        assert {dns.rdatatype.A, dns.rdatatype.NSEC} <= covered, reply
    finally:
        resolver.stop()


def test_a_relay_named_in_capitals_has_a_target_that_resolves_and_validates(tmp_path: Path) -> None:
    server, anchor = serve_signed(
        tmp_path,
        edit={"mirrors.yaml": ("relays:\n", "relays:\n  RelayX: {addresses: [127.0.0.1], turn: {tcp: 3480}}\n")},
        append={"default.yaml": "_turn._tcp: {RelayX: 0}\n"})
    try:
        srv = dns.query.tcp(dns.message.make_query(f"_turn._tcp.{ZONE}", "SRV"), "127.0.0.1", port=server.port)
        target = next(rr.target for rrset in srv.answer if rrset.rdtype == dns.rdatatype.SRV for rr in rrset)
        out = delv(server, anchor, str(target), "A")
        assert out.startswith("; fully validated\n") and "127.0.0.1" in out, out
    finally:
        server.stop()


def test_the_shortest_validity_accepted_serves_signatures_that_have_not_expired(tmp_path: Path) -> None:
    server, anchor = serve_signed(tmp_path, edit={"dnsbalance.yaml": (
        "dnssec: {sign: true}", "dnssec: {sign: true, validity: 3600, refresh: 600}")})
    try:
        reply = dns.query.udp(dns.message.make_query(f"deb.{ZONE}", "A", want_dnssec=True), "127.0.0.1",
                              port=server.port, timeout=5)
        expiration = next(rrset[0].expiration for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG)
        assert expiration > time.time() + 600, expiration - time.time()
        out = delv(server, anchor, f"deb.{ZONE}", "A")
        assert out.startswith("; fully validated\n"), out
    finally:
        server.stop()


@pytest.mark.parametrize("do", [False, True])
def test_any_at_a_relay_target_or_a_name_server_gets_its_address(plain: tuple[Server, Path], do: bool) -> None:
    """RFC 8482's one RRset: the A where the name has one. It was AAAA always (the weighted names' fallback), so an
    IPv4-only relay target got an empty NODATA and ns1 its AAAA only."""
    server, _ = plain
    for name, address in ((f"r1.relay.{ZONE}", "127.0.0.1"), (f"ns1.{ZONE}", None)):
        reply = dns.query.udp(dns.message.make_query(name, "ANY", want_dnssec=do), "127.0.0.1", port=server.port,
                              timeout=5)
        found = [rrset for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A]
        assert reply.rcode() == dns.rcode.NOERROR and found, reply
        assert address is None or address in {rr.address for rr in found[0]}
        signed = {rr.type_covered for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG for rr in rrset}
        assert signed == ({dns.rdatatype.A} if do else set()), reply


@pytest.mark.parametrize("payload", [512, 1232, 4096])
def test_an_rrsig_query_over_udp_is_whole_or_truncated(plain: tuple[Server, Path], payload: int) -> None:
    """An answer of RRSIGs only (no RRset before them): the renderer fits it or sets TC, as for any answer."""
    server, _ = plain
    for name in (ZONE, f"deb.{ZONE}", f"_http._tcp.deb.{ZONE}"):
        query = dns.message.make_query(name, "RRSIG", want_dnssec=True, payload=payload)
        reply = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=5)
        assert reply.rcode() == dns.rcode.NOERROR, reply
        assert len(reply.to_wire()) <= payload
        if not reply.flags & dns.flags.TC:
            covered = {rr.type_covered for rrset in reply.answer for rr in rrset}
            assert dns.rdatatype.NSEC in covered and len(covered) >= 2, reply
