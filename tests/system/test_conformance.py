"""Protocol conformance, one behaviour per test; where RFCs leave room, the answer gdnsd 3.8 and Knot 3.2
give to the same query (checked by hand against both, see docs/protocol.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.update
import pytest

from tests.harness import Server, make_config, start_server


def ask(server: Server, message: dns.message.Message, tcp: bool = False) -> dns.message.Message:
    send = dns.query.tcp if tcp else dns.query.udp
    return send(message, "127.0.0.1", port=server.port, timeout=3)


def query(name: str = "deb.cdn.example.org", rdtype: str = "A", **kw: object) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]


def test_plain_query(shared_server: Server) -> None:
    reply = ask(shared_server, query(use_edns=False))
    assert reply.rcode() == dns.rcode.NOERROR and reply.edns < 0 and reply.answer


@pytest.mark.parametrize("flag", [dns.flags.AD, dns.flags.CD, 0x0040], ids=["AD", "CD", "Z"])
def test_unknown_and_dnssec_flags_are_ignored_and_not_echoed(shared_server: Server, flag: int) -> None:
    message = query()
    message.flags |= flag
    reply = ask(shared_server, message)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert not reply.flags & (dns.flags.AD | dns.flags.CD | 0x0040)  # as gdnsd and Knot


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, 3, 15])
def test_other_opcodes_notimp(shared_server: Server, opcode: int) -> None:
    message = query()
    message.set_opcode(opcode)
    reply = ask(shared_server, message)
    assert reply.rcode() == dns.rcode.NOTIMP and reply.opcode() == opcode


def test_update_notimp(shared_server: Server) -> None:
    update = dns.update.UpdateMessage("cdn.example.org")
    update.add("deb", 60, "A", "192.0.2.99")
    reply = ask(shared_server, update)
    assert reply.rcode() == dns.rcode.NOTIMP and reply.opcode() == dns.opcode.UPDATE


@pytest.mark.parametrize("rdtype", [666, "TXT", "MX", "CAA", "HTTPS", "OPT"])
def test_unknown_and_absent_types_are_nodata(shared_server: Server, rdtype: int | str) -> None:
    reply = ask(shared_server, query(rdtype=rdtype))  # type: ignore[arg-type]
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert reply.answer == [] and reply.authority[0].rdtype == dns.rdatatype.SOA


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR", "MAILB", "MAILA"])
def test_transfers_and_meta_types_notimp(shared_server: Server, rdtype: str) -> None:
    assert ask(shared_server, query("cdn.example.org", rdtype)).rcode() == dns.rcode.NOTIMP


def test_edns_version_1_is_badvers_with_opt(shared_server: Server) -> None:
    reply = ask(shared_server, query(use_edns=1))
    assert reply.rcode() == dns.rcode.BADVERS  # 16: 0 in the header, 1 in the OPT's extended rcode
    assert reply.edns == 0 and reply.answer == []


def test_unknown_options_and_flags_ignored(shared_server: Server) -> None:
    odd = dns.edns.GenericOption(65001, b"\xab\xcd")
    reply = ask(shared_server, query(use_edns=0, ednsflags=0x7FFF, options=[odd]))
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert reply.ednsflags == 0 and not reply.options  # neither echoed


def test_do_bit_is_echoed(shared_server: Server) -> None:
    reply = ask(shared_server, query(use_edns=0, want_dnssec=True))
    assert reply.ednsflags & dns.flags.DO and reply.answer
    assert not any(rrset.rdtype == dns.rdatatype.RRSIG for rrset in reply.answer)  # unsigned zone


def test_edns_over_tcp(shared_server: Server) -> None:
    reply = ask(shared_server, query(use_edns=0, payload=4096,
                                     options=[dns.edns.ECSOption("1.0.16.0", 24)]), tcp=True)
    assert reply.edns == 0 and reply.answer
    assert [o.scopelen for o in reply.options if o.otype == dns.edns.ECS] == [20]


def test_rd_gets_no_ra(shared_server: Server) -> None:
    reply = ask(shared_server, query())
    assert reply.flags & dns.flags.RD and not reply.flags & dns.flags.RA


def test_any_is_answered_minimally(shared_server: Server) -> None:
    reply = ask(shared_server, query("deb.cdn.example.org", "ANY"))
    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.A]  # one RRset (RFC 8482)
    apex = ask(shared_server, query("cdn.example.org", "ANY"))
    assert [rrset.rdtype for rrset in apex.answer] == [dns.rdatatype.SOA]


def test_class_any_is_in_and_other_classes_refused(shared_server: Server) -> None:
    assert ask(shared_server, query(rdclass=dns.rdataclass.ANY)).answer
    assert ask(shared_server, query(rdclass=dns.rdataclass.HS)).rcode() == dns.rcode.REFUSED


def test_chaos_version(shared_server: Server) -> None:
    reply = ask(shared_server, query("version.bind", "TXT", rdclass=dns.rdataclass.CH))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer[0][0].strings == (b"dnsbalance",)
    assert ask(shared_server, query("id.server", "TXT", rdclass=dns.rdataclass.CH)).rcode() == dns.rcode.REFUSED


def test_cookie_echoed_with_server_cookie_and_accepted_back(shared_server: Server) -> None:
    client = bytes.fromhex("0102030405060708")
    reply = ask(shared_server, query(use_edns=0, options=[dns.edns.CookieOption(client, b"")]))
    (cookie,) = [o for o in reply.options if o.otype == dns.edns.COOKIE]
    assert cookie.client == client and len(cookie.server) == 16 and cookie.server[0] == 1  # RFC 9018 layout
    again = ask(shared_server, query(use_edns=0, options=[dns.edns.CookieOption(client, cookie.server)]))
    (second,) = [o for o in again.options if o.otype == dns.edns.COOKIE]
    assert second.client == client and again.answer


def test_cookie_only_query_gets_noerror_with_cookie(shared_server: Server) -> None:
    message = dns.message.Message()
    message.use_edns(0, options=[dns.edns.CookieOption(b"12345678", b"")])
    reply = ask(shared_server, message)
    assert reply.rcode() == dns.rcode.NOERROR and reply.question == []
    assert [o.otype for o in reply.options] == [dns.edns.COOKIE]


@pytest.mark.parametrize("data", [b"1234567", b"123456789", b"12345678" + b"x" * 33])
def test_malformed_cookie_is_formerr(shared_server: Server, data: bytes) -> None:
    reply = ask(shared_server, query(use_edns=0, options=[dns.edns.GenericOption(dns.edns.COOKIE, data)]))
    assert reply.rcode() == dns.rcode.FORMERR


def test_qdcount_zero_without_cookie_is_formerr(shared_server: Server) -> None:
    message = dns.message.Message()
    message.use_edns(0)
    assert ask(shared_server, message).rcode() == dns.rcode.FORMERR


def test_nsid_off_by_default(shared_server: Server) -> None:
    reply = ask(shared_server, query(use_edns=0, options=[dns.edns.GenericOption(dns.edns.NSID, b"")]))
    assert not [o for o in reply.options if o.otype == dns.edns.NSID]


@pytest.fixture(scope="module")
def nsid_server(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("nsid")
    config = make_config(base / "config", country_mmdb)
    with (config / "dnsbalance.yaml").open("a") as handle:
        handle.write("nsid: ns1-tokyo\ncookies: false\n")
    running = start_server(config, base / "log", ipv6=False)
    yield running
    running.stop()


def test_nsid_when_configured(nsid_server: Server) -> None:
    reply = ask(nsid_server, query(use_edns=0, options=[dns.edns.GenericOption(dns.edns.NSID, b"")]))
    assert [o.to_wire() for o in reply.options if o.otype == dns.edns.NSID] == [b"ns1-tokyo"]
    plain = ask(nsid_server, query(use_edns=0))
    assert not plain.options  # only to clients that ask
    chaos = ask(nsid_server, query("id.server", "TXT", rdclass=dns.rdataclass.CH))
    assert chaos.answer[0][0].strings == (b"ns1-tokyo",)


def test_cookies_can_be_turned_off(nsid_server: Server) -> None:
    reply = ask(nsid_server, query(use_edns=0, options=[dns.edns.CookieOption(b"12345678", b"")]))
    assert not [o for o in reply.options if o.otype == dns.edns.COOKIE] and reply.answer
