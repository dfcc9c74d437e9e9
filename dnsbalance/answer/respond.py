"""The answer logic, pure: (query, client location, active table, random source) -> reply.

No sockets, no GeoIP reader, no clock: the server hands in everything this needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

from dnslib import (
    AAAA,
    NS,
    RR,
    SOA,
    SRV,
    TXT,
    A,
    DNSHeader,
    DNSLabel,
    DNSRecord,
    EDNSOption,
)

from dnsbalance.configuration.model import APEX, RELAY_LABEL, SRV_SERVICES
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import UNSUPPORTED_TYPES, DClass, Opcode, OptionCode, Rcode, RType
from dnsbalance.protocol.edns import Edns, MalformedOption, opt_record, read_edns
from dnsbalance.ranking.active import ActiveTable, Pool
from dnsbalance.ranking.draw import draw


@dataclass(frozen=True)
class Reply:
    record: DNSRecord
    rcode: Rcode
    pool: Pool | None = None  # the pool an A/AAAA answer was drawn from
    chosen: tuple[str, ...] = ()  # mirror names in answer order


def _header(query: DNSRecord, rcode: Rcode, authoritative: bool) -> DNSHeader:
    # RD is copied; CD and AD are not (gdnsd and Knot answer the same way), Z is zero.
    q = query.header
    return DNSHeader(id=q.id, qr=1, opcode=q.opcode, aa=int(authoritative), tc=0, rd=q.rd, ra=0,
                     rcode=int(rcode) & 0xF)


def error_reply(query: DNSRecord, rcode: Rcode, edns: Edns | None = None,
                options: list[EDNSOption] | None = None) -> Reply:
    """REFUSED, NOTIMP, FORMERR, SERVFAIL, BADVERS: the question echoed (if one), no records, AA clear."""
    echo = len(query.questions) == 1 and name_ok(query.questions[0].qname)  # an illegal name cannot be packed
    record = DNSRecord(_header(query, rcode, authoritative=False), q=query.questions[0] if echo else None)
    if edns is not None:
        record.add_ar(opt_record(int(rcode) >> 4, edns.do, options or []))
    return Reply(record, rcode)


def name_ok(qname: DNSLabel) -> bool:
    """RFC 1035 limits that dnslib does not enforce: labels of 63 octets, names of 255 on the wire."""
    return all(len(label) <= 63 for label in qname.label) and sum(len(label) + 1 for label in qname.label) + 1 <= 255


def relative_name(qname: DNSLabel, zone: str) -> str | None:
    """'deb' for deb.cdn.example.org, '@' for the apex, None outside the zone."""
    text = str(qname).rstrip(".").lower()
    if text == zone:
        return APEX
    if text.endswith("." + zone):
        return text[: -len(zone) - 1]
    return None


def _apex_label(qname: DNSLabel, zone: str) -> DNSLabel:
    """The zone apex spelled with the query's letter case."""
    depth = zone.count(".") + 1
    return DNSLabel(qname.label[-depth:])


def _soa_rr(table: ActiveTable, apex: DNSLabel) -> RR:
    soa = table.zone.soa
    return RR(apex, RType.SOA, ttl=table.zone.negative_ttl,
              rdata=SOA(soa.mname + ".", soa.rname + ".", (soa.serial, soa.refresh, soa.retry, soa.expire,
                                                           soa.minimum)))


def _address_rr(owner: DNSLabel, rtype: RType, address: str, ttl: int) -> RR:
    return RR(owner, rtype, ttl=ttl, rdata=A(address) if rtype is RType.A else AAAA(address))


def _glue(table: ActiveTable, name: str, owner: DNSLabel, rtypes: tuple[RType, ...]) -> list[RR]:
    return [_address_rr(owner, rtype, address, table.zone.soa_ttl)
            for rtype, address in table.zone.glue.get(name, ()) if rtype in rtypes]


def _ns_glue(table: ActiveTable, apex: DNSLabel) -> list[RR]:
    zone = table.zone.zone
    out = []
    for ns in table.zone.nameservers:
        if ns.endswith("." + zone):
            relative = ns[: -len(zone) - 1]
            owner = DNSLabel([label.encode() for label in relative.split(".")] + list(apex.label))
            out += _glue(table, relative, owner, (RType.A, RType.AAAA))
    return out


def _edns_options(edns: Edns, table: ActiveTable, ecs_scope: int | None, cookie: bytes | None) -> list[EDNSOption]:
    options = []
    if edns.client_subnet is not None and ecs_scope is not None:
        options.append(edns.client_subnet.to_option(ecs_scope))
    if table.zone.nsid is not None and any(o.code == OptionCode.NSID for o in edns.options):
        options.append(EDNSOption(OptionCode.NSID, table.zone.nsid))
    if cookie is not None:
        options.append(EDNSOption(OptionCode.COOKIE, cookie))
    return options


UNREAD: Any = object()  # respond() reads the OPT record itself


def respond(query: DNSRecord, location: Location, table: ActiveTable, rng: Random,
            ecs_scope: int | None = None, cookie: bytes | None = None, packet: bytes | None = None,
            edns: Edns | None = UNREAD) -> Reply:
    """The reply to one parsed query. `ecs_scope` is set when the client subnet chose the location;
    `cookie` is the COOKIE option to return (client cookie + server cookie) when the client sent one;
    `edns`, the OPT record as the caller already read it (the server reads it once per query); else
    `packet`, the query's wire form, lets EDNS options be read exactly here."""
    if query.header.qr:
        return error_reply(query, Rcode.FORMERR)
    if edns is UNREAD:
        try:
            edns = read_edns(query, packet)
        except MalformedOption:
            return error_reply(query, Rcode.FORMERR)
    cookies = [EDNSOption(OptionCode.COOKIE, cookie)] if cookie is not None else []
    if query.header.opcode != Opcode.QUERY:
        return error_reply(query, Rcode.NOTIMP, edns, cookies)
    if edns is not None and edns.version > 0:
        return error_reply(query, Rcode.BADVERS, edns, cookies)  # RFC 6891 section 6.1.3
    if not query.questions and cookie is not None:
        return error_reply(query, Rcode.NOERROR, edns, cookies)  # RFC 7873 5.4: a cookie-only query
    if len(query.questions) != 1 or not name_ok(query.questions[0].qname):
        return error_reply(query, Rcode.FORMERR, edns, cookies)

    question = query.questions[0]
    name = relative_name(question.qname, table.zone.zone)
    if question.qclass == DClass.CH:
        reply = _chaos(query, question.qtype, table)
    elif name is None or question.qclass not in (DClass.IN, DClass.ANY):
        return error_reply(query, Rcode.REFUSED, edns, cookies)  # authoritative only: never a resolver
    elif question.qtype in UNSUPPORTED_TYPES:
        return error_reply(query, Rcode.NOTIMP, edns, cookies)  # no zone transfers; as gdnsd answers
    else:
        reply = _answer(query, name, question.qtype, location, table, rng)
    if ecs_scope and (name is None or not table.client_dependent(name, question.qtype)):
        ecs_scope = 0  # the same answer for every client: RFC 7871 7.2.1
    if edns is not None:
        reply.record.add_ar(opt_record(0, edns.do, _edns_options(edns, table, ecs_scope, cookie)))
    return reply


def _chaos(query: DNSRecord, qtype: int, table: ActiveTable) -> Reply:
    """CH TXT version.bind / version.server, and id.server / hostname.bind when an NSID is set."""
    qname = query.questions[0].qname
    text = str(qname).rstrip(".").lower()
    value = None
    if text in ("version.bind", "version.server"):
        value = b"dnsbalance"
    elif text in ("id.server", "hostname.bind") and table.zone.nsid is not None:
        value = table.zone.nsid
    if value is None or qtype not in (RType.TXT, RType.ANY):
        record = DNSRecord(_header(query, Rcode.REFUSED, False), q=query.questions[0])
        return Reply(record, Rcode.REFUSED)
    record = DNSRecord(_header(query, Rcode.NOERROR, True), q=query.questions[0])
    record.add_answer(RR(qname, RType.TXT, rclass=DClass.CH, ttl=0, rdata=TXT(value)))
    return Reply(record, Rcode.NOERROR)


def _answer(query: DNSRecord, name: str, qtype: int, location: Location, table: ActiveTable,
            rng: Random) -> Reply:
    qname = query.questions[0].qname
    apex = _apex_label(qname, table.zone.zone)
    if name not in table.names:
        record = DNSRecord(_header(query, Rcode.NXDOMAIN, True), q=query.questions[0])
        record.add_auth(_soa_rr(table, apex))
        return Reply(record, Rcode.NXDOMAIN)

    record = DNSRecord(_header(query, Rcode.NOERROR, True), q=query.questions[0])
    pool: Pool | None = None
    chosen: tuple[str, ...] = ()
    if qtype == RType.ANY:
        # RFC 8482: one RRset, not everything; the SOA at the apex, else the SRV or A (or AAAA) answer.
        qtype = RType.SOA if name == APEX else RType.SRV if name in SRV_SERVICES else RType.A
        if qtype == RType.A and table.pool_for(location, name, RType.A) is None:
            qtype = RType.AAAA
    if name == APEX and qtype == RType.SOA:
        soa = _soa_rr(table, apex)
        soa.ttl = table.zone.soa_ttl
        record.add_answer(soa)
    elif name == APEX and qtype == RType.NS:
        for ns in table.zone.nameservers:
            record.add_answer(RR(qname, RType.NS, ttl=table.zone.soa_ttl, rdata=NS(ns + ".")))
        for rr in _ns_glue(table, apex):
            record.add_ar(rr)
    elif qtype in (RType.A, RType.AAAA) and name in table.zone.glue:
        for rr in _glue(table, name, qname, (RType(qtype),)):
            record.add_answer(rr)
    elif qtype in (RType.A, RType.AAAA) and name in table.zone.targets:
        for rtype, address in table.zone.targets[name]:
            if rtype == qtype:
                record.add_answer(_address_rr(qname, rtype, address, table.zone.ttl))
    elif qtype == RType.SRV and name in SRV_SERVICES:
        pool = table.pool_for(location, name, RType.SRV)
        if pool is not None:
            chosen = _srv(record, table, pool, qname, apex, rng)
    elif qtype in (RType.A, RType.AAAA):
        rtype = RType(qtype)
        pool = table.pool_for(location, name, rtype)
        if pool is not None:
            variant = table.variants(pool, rtype).pick(rng)
            chosen = variant.names
            for address in variant.addresses:
                record.add_answer(_address_rr(qname, rtype, address, table.zone.ttl))
    if not record.rr:
        record.add_auth(_soa_rr(table, apex))  # NODATA (RFC 2308)
    return Reply(record, Rcode.NOERROR, pool, chosen)


def _srv(record: DNSRecord, table: ActiveTable, pool: Pool, qname: DNSLabel, apex: DNSLabel,
         rng: Random) -> tuple[str, ...]:
    """One SRV record per usable relay, in a weighted random order (for clients that take the first),
    the targets' addresses in the additional section."""
    order = draw(pool.candidates, pool.weights, len(pool.candidates), rng)
    order.sort(key=lambda c: c.tier)  # stable: the weighted order holds within a tier
    for candidate in order:
        target = DNSLabel([candidate.name.encode(), RELAY_LABEL.encode(), *apex.label])
        record.add_answer(RR(qname, RType.SRV, ttl=table.zone.ttl,
                             rdata=SRV(candidate.tier, candidate.weight, candidate.port, target)))
        for rtype, address in table.zone.targets.get(f"{candidate.name}.{RELAY_LABEL}", ()):
            record.add_ar(_address_rr(target, rtype, address, table.zone.ttl))
    return tuple(c.name for c in order)
