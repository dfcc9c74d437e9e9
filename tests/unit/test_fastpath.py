"""The fast path and the full path give the same reply for the same question and variant."""
from __future__ import annotations

import random
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsbalance.answer import native
from dnsbalance.serving.balancer import Balancer
from tests.harness import fixture_balancer

# Labels holding a dot or the zone's bytes: `deb.cdn` and `deb\x03cdn` under example.org are outside the zone
# (their wire form ends with the apex's bytes, not at a label boundary); `a.b` under the zone is in it, NXDOMAIN.
ODD_NAMES = [dns.name.Name((b"deb.cdn", b"example", b"org", b"")), dns.name.Name((b"deb\x03cdn", b"example", b"org", b"")),
             dns.name.Name((b"a.b", b"cdn", b"example", b"org", b""))]
NAMES = ["deb.cdn.example.org", "DEB.cdn.Example.ORG", "cdn.example.org", "deep.cdn.example.org",
         "_sub.deep.cdn.example.org", "nosuch.cdn.example.org", "a.b.c.CDN.example.org", "ns1.cdn.example.org",
         "example.com", "deb.cdn.example.org.evil", *ODD_NAMES]
SUBNETS = [None, ("1.0.16.0", 24), ("1.0.16.0", 20), ("5.0.0.0", 16), ("2.0.1.0", 24), ("0.0.0.0", 0),
           ("2001:200:1::", 48), ("9.9.9.0", 24), ("10.0.0.0", 8)]


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Balancer:
    return fixture_balancer(tmp_path_factory.mktemp("fast") / "config", country_mmdb)


@pytest.fixture(scope="module")
def signed_balancer(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Balancer:
    """The same zone signed (`dnssec: {sign: true}`): DO answers carry their set's presigned RRSIG."""
    return fixture_balancer(tmp_path_factory.mktemp("fast-signed") / "config", country_mmdb, signed=True)


queries = st.fixed_dictionaries({
    "name": st.sampled_from(NAMES),
    "rdtype": st.sampled_from(["A", "AAAA"]),
    "edns": st.booleans(),
    "subnet": st.sampled_from(SUBNETS),
    "do": st.booleans(),
    "rd": st.booleans(),
    "payload": st.sampled_from([512, 1232, 4096, 600]),
    "client": st.sampled_from(["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1", "::ffff:127.0.0.2"]),
    "seed": st.integers(0, 2**32),
    "ident": st.integers(0, 65535),
})


def build(q: dict) -> bytes:
    options = None
    if q["subnet"] is not None:
        options = [dns.edns.ECSOption(*q["subnet"])]
    message = dns.message.make_query(q["name"], q["rdtype"], use_edns=0 if q["edns"] else False,
                                     payload=q["payload"] if q["edns"] else None,
                                     want_dnssec=q["do"] and q["edns"], options=options if q["edns"] else None,
                                     id=q["ident"])
    if not q["rd"]:
        message.flags &= ~dns.flags.RD
    return message.to_wire()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries)
def test_fast_and_full_path_agree(balancer: Balancer, q: dict) -> None:
    agree(balancer, q)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries)
def test_fast_and_full_path_agree_on_a_signed_zone(signed_balancer: Balancer, q: dict) -> None:
    agree(signed_balancer, q)


def agree(balancer: Balancer, q: dict) -> None:
    packet = build(q)
    serving = balancer.serving
    fast = serving.fast.answer(packet, q["client"], serving.locator.locate, random.Random(q["seed"]))
    balancer.rng = random.Random(q["seed"])
    full = balancer.full(serving, packet, q["client"], tcp=False)
    assert full is not None
    if native.active():  # the native path (issue 27): once the shape is learnt, the same bytes for the same draw
        shapes = serving.fast.native.process_shapes()
        prepared = serving.fast.lookup(packet, q["client"], serving.locator.locate)
        learnt = prepared is not None and serving.fast.native.learn(packet, q["client"], prepared)
        assert (shapes.answer(packet, q["client"], random.Random(q["seed"]).random) or None) == (
            fast if learnt else None)
        if prepared is not None:  # signed DO replies too: the RRSIG of each variant's set is in the C table
            assert learnt
    if fast is None:
        return  # the full path's business (outside the zone, glue, oversized): nothing to compare
    parsed_fast, parsed_full = dns.message.from_wire(fast), dns.message.from_wire(bytes(full))
    if parsed_full.answer:
        assert fast == full  # answers: the same bytes
    else:
        # Negative answers: dnslib compresses the SOA's names against the question where the letter case
        # allows, the fast path never does; the messages are otherwise identical.
        assert parsed_fast == parsed_full
        assert parsed_fast.authority[0].ttl == parsed_full.authority[0].ttl


@pytest.mark.parametrize("signed", [False, True])
def test_a_label_holding_a_dot_or_the_apex_bytes_is_not_in_the_zone(balancer: Balancer, signed_balancer: Balancer,
                                                                   signed: bool) -> None:
    """`deb.cdn` and `deb\\003cdn` under example.org: REFUSED by both paths (the fast path once answered the second
    NXDOMAIN, its byte suffix being the apex's; the full path read the first as `deb`). `a.b` under the zone:
    NXDOMAIN, and signed, its NSEC proof validates (found on the labels, as the fast path finds it)."""
    import dns.dnssec
    import dns.rcode
    import dns.rdatatype
    chosen = signed_balancer if signed else balancer
    serving = chosen.serving
    zone = dns.name.from_text("cdn.example.org")
    for name, rcode in zip(ODD_NAMES, (dns.rcode.REFUSED, dns.rcode.REFUSED, dns.rcode.NXDOMAIN)):
        packet = dns.message.make_query(name, "A", want_dnssec=signed).to_wire()
        fast = serving.fast.answer(packet, "127.0.0.1", serving.locator.locate, random.Random(1))
        full = chosen.full(serving, packet, "127.0.0.1", tcp=False)
        assert full is not None
        reply = dns.message.from_wire(fast or bytes(full))
        assert reply.rcode() == rcode and dns.message.from_wire(bytes(full)).rcode() == rcode, name
        if signed and rcode == dns.rcode.NXDOMAIN:
            keys = dns.message.from_wire(bytes(chosen.full(serving, dns.message.make_query(
                zone, "DNSKEY", want_dnssec=True).to_wire(), "127.0.0.1", tcp=False))).answer[0]
            nsecs = [r for r in reply.authority if r.rdtype == dns.rdatatype.NSEC]
            # one NSEC covers the name in canonical order (dnspython compares names so), wrapping at the end
            assert any(n.name < name < n[0].next or n[0].next <= n.name < name for n in nsecs)
            for rrset in reply.authority:
                if rrset.rdtype != dns.rdatatype.RRSIG:
                    sig = reply.find_rrset(reply.authority, rrset.name, rrset.rdclass, dns.rdatatype.RRSIG,
                                           rrset.rdtype)
                    dns.dnssec.validate(rrset, sig, {zone: keys})


def test_fast_path_takes_the_common_queries(balancer: Balancer) -> None:
    taken = 0
    for name in ("deb.cdn.example.org", "nosuch.cdn.example.org", "Deb.Cdn.Example.Org"):
        for subnet in (None, ("1.0.16.0", 24)):
            q = {"name": name, "rdtype": "A", "edns": True, "subnet": subnet, "do": False, "rd": True,
                 "payload": 1232, "seed": 1, "ident": 7}
            taken += balancer.serving.fast.answer(build(q), "127.0.0.1", balancer.serving.locator.locate,
                                                   random.Random(1)) is not None
    assert taken == 6


def test_full_path_only_for_the_unusual(balancer: Balancer) -> None:
    cookie = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0,
                                    options=[dns.edns.CookieOption(b"12345678", b"")]).to_wire()
    mx = dns.message.make_query("deb.cdn.example.org", "MX").to_wire()
    outside = dns.message.make_query("example.com", "A").to_wire()
    for packet in (cookie, mx, outside):
        assert balancer.serving.fast.answer(packet, "127.0.0.1", balancer.serving.locator.locate,
                                            random.Random(1)) is None


def test_fast_path_answers_do_queries_of_a_signed_zone_with_their_rrsig(signed_balancer: Balancer) -> None:
    """A and AAAA with DO: the fast path's reply carries the set's RRSIG and validates, byte for byte the full
    path's; NXDOMAIN and NODATA carry the same signed SOA and NSECs as the full path's, and validate."""
    import dns.dnssec
    import dns.name
    import dns.rdatatype
    serving = signed_balancer.serving
    zone = dns.name.from_text("cdn.example.org")
    keys_reply = dns.message.from_wire(bytes(signed_balancer.full(
        serving, dns.message.make_query(zone, "DNSKEY", want_dnssec=True).to_wire(), "127.0.0.1", tcp=False)))
    keys = keys_reply.answer[0]
    for rdtype in ("A", "AAAA"):
        packet = dns.message.make_query("deb.cdn.example.org", rdtype, want_dnssec=True).to_wire()
        fast = serving.fast.answer(packet, "127.0.0.1", serving.locator.locate, random.Random(3))
        assert fast is not None
        signed_balancer.rng = random.Random(3)
        assert fast == bytes(signed_balancer.full(serving, packet, "127.0.0.1", tcp=False))  # the same bytes
        reply = dns.message.from_wire(fast)
        answer = next(r for r in reply.answer if r.rdtype == dns.rdatatype.from_text(rdtype))
        sig = next(r for r in reply.answer if r.rdtype == dns.rdatatype.RRSIG)
        dns.dnssec.validate(answer, sig, {zone: keys})
    for name, rdtype in (("nosuch.cdn.example.org", "A"), ("x.y.deep.cdn.example.org", "AAAA"),
                         ("deep.cdn.example.org", "A"), ("ns1.cdn.example.org", "TXT")):
        packet = dns.message.make_query(name, rdtype, want_dnssec=True).to_wire()
        fast = serving.fast.answer(packet, "127.0.0.1", serving.locator.locate, random.Random(3))
        if rdtype == "TXT":
            assert fast is None  # not A/AAAA: the full path's
            continue
        assert fast is not None  # NXDOMAIN and NODATA with their NSECs: the fast path's too
        reply = dns.message.from_wire(fast)
        full = dns.message.from_wire(bytes(signed_balancer.full(serving, packet, "127.0.0.1", tcp=False)))
        assert reply == full and reply.rcode() == full.rcode()
        nsecs = [r for r in reply.authority if r.rdtype == dns.rdatatype.NSEC]
        assert nsecs and len(reply.authority) == 2 + 2 * len(nsecs)
        for rrset in reply.authority:
            if rrset.rdtype != dns.rdatatype.RRSIG:
                sig = next(r for r in reply.authority if r.rdtype == dns.rdatatype.RRSIG and r.name == rrset.name
                           and r.covers == rrset.rdtype)
                dns.dnssec.validate(rrset, sig, {zone: keys})
