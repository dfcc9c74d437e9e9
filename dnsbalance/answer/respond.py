"""The answer logic, pure: (query, client location, active table, random source) -> reply.

No sockets, no GeoIP reader, no clock: the server hands in everything this needs. The query comes parsed by
dnslib (the full path takes the odd ones); the reply is values (protocol/renderer.py's Message) written by
the renderer, from records the compiler made once per table (compiler/).
"""
from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

from dnslib import DNSLabel, DNSRecord

from dnsbalance.compiler.signatures import ZoneSignatures, absolute, soa_rdata, srv_rdatas
from dnsbalance.compiler.table import compiled
from dnsbalance.compiler.zone import CompiledZone
from dnsbalance.configuration.model import APEX, MIRROR_LABEL, SRV_SERVICES
from dnsbalance.configuration.names import relative_to
from dnsbalance.configuration.web_services import apt_records, web_service
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import TCP_SIZE, UNSUPPORTED_TYPES, DClass, Opcode, OptionCode, Rcode, RType
from dnsbalance.protocol.edns import Edns, MalformedOption, read_edns
from dnsbalance.protocol.renderer import (
    Entry,
    Message,
    Name,
    Prerendered,
    Question,
    Record,
    flags,
    name_of,
    option,
    render,
    wire_name,
)
from dnsbalance.ranking.active import ActiveTable, Pool
from dnsbalance.ranking.draw import draw
from dnsbalance.ranking.pool import Candidate


@dataclass(frozen=True)
class Reply:
    message: Message
    rcode: Rcode
    pool: Pool | None = None  # the pool an A/AAAA answer was drawn from
    chosen: tuple[str, ...] = ()  # mirror names in answer order

    @property
    def record(self) -> DNSRecord:
        """The reply as dnslib reads it back (tests and tools; the server sends the rendered bytes)."""
        return DNSRecord.parse(render(self.message, TCP_SIZE).wire)


def _question(query: DNSRecord) -> Question:
    question = query.questions[0]
    return Question(tuple(question.qname.label), question.qtype, question.qclass)


def _flags(query: DNSRecord, rcode: Rcode, authoritative: bool) -> int:
    return flags(query.header.opcode, bool(query.header.rd), int(rcode), authoritative)


def error_reply(query: DNSRecord, rcode: Rcode, edns: Edns | None = None, options: bytes = b"") -> Reply:
    """REFUSED, NOTIMP, FORMERR, SERVFAIL, BADVERS: the question echoed (if one), no records, AA clear."""
    echo = len(query.questions) == 1 and name_ok(query.questions[0].qname)  # an illegal name cannot be packed
    opt = (int(rcode) >> 4, edns.do, options) if edns is not None else None
    return Reply(Message(query.header.id, _flags(query, rcode, False), _question(query) if echo else None,
                         opt=opt), rcode)


def name_ok(qname: DNSLabel) -> bool:
    """RFC 1035 limits that dnslib does not enforce: labels of 63 octets, names of 255 on the wire."""
    return all(len(label) <= 63 for label in qname.label) and sum(len(label) + 1 for label in qname.label) + 1 <= 255


def relative_name(qname: DNSLabel, zone: str) -> str | None:
    """'deb' for deb.cdn.example.org, '@' for the apex, None outside the zone. Compared label by label, not as
    text: dnslib writes a label holding a dot as it is, so `deb.cdn` under example.org would read as deb in
    the zone. A name in the zone with such a label gets a name no table has (its dots escaped): NXDOMAIN."""
    labels = [label.lower() for label in qname.label]
    apex = zone.encode().split(b".")
    if len(labels) < len(apex) or labels[len(labels) - len(apex) :] != apex:
        return None
    below = labels[: len(labels) - len(apex)]
    if not below:
        return APEX
    if any(b"." in label for label in below):
        return ".".join(label.decode("latin-1").replace(".", "\\.") for label in below)
    return relative_to(str(qname), zone)


def _edns_options(edns: Edns, table: ActiveTable, ecs_scope: int | None, cookie: bytes | None) -> bytes:
    options = b""
    if edns.client_subnet is not None and ecs_scope is not None:
        options += edns.client_subnet.option(ecs_scope)
    if table.zone.nsid is not None and any(o.code == OptionCode.NSID for o in edns.options):
        options += option(OptionCode.NSID, table.zone.nsid)
    if cookie is not None:
        options += option(OptionCode.COOKIE, cookie)
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
    cookies = option(OptionCode.COOKIE, cookie) if cookie is not None else b""
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
        signatures = compiled(table).signatures
        reply = _answer(query, name, question.qtype, location, table, rng,
                        signatures if signatures is not None and edns is not None and edns.do else None,
                        signatures is not None)
    if ecs_scope and (name is None or not table.client_dependent(name, question.qtype)):
        ecs_scope = 0  # the same answer for every client: RFC 7871 7.2.1
    if edns is not None:
        message = reply.message
        reply = Reply(Message(message.ident, message.flags, message.question, message.answer, message.authority,
                              message.additional, (0, edns.do, _edns_options(edns, table, ecs_scope, cookie))),
                      reply.rcode, reply.pool, reply.chosen)
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
        return Reply(Message(query.header.id, _flags(query, Rcode.REFUSED, False), _question(query)), Rcode.REFUSED)
    txt = Record(tuple(qname.label), RType.TXT, DClass.CH, 0, (bytes((len(value),)) + value,))
    return Reply(Message(query.header.id, _flags(query, Rcode.NOERROR, True), _question(query), (txt,)),
                 Rcode.NOERROR)


def _answer(query: DNSRecord, name: str, qtype: int, location: Location, table: ActiveTable,
            rng: Random, signatures: ZoneSignatures | None = None, signed: bool = False) -> Reply:
    """`signatures`: the table's presigned RRSIGs and NSECs when the query set DO on a signed zone (they are
    looked up here, never made); `signed`: the zone is signed, so its DNSKEY RRset exists."""
    zone_wire = compiled(table)
    zone = zone_wire.zone
    question = _question(query)
    apex = question.name[-zone.depth:]  # the zone apex spelled with the query's letter case
    if name not in table.names:
        authority: tuple[Entry, ...] = (zone.negative_soa(apex),)
        if signatures is not None:
            authority += _soa_rrsig(signatures, table, apex, zone.negative_ttl) + \
                _nxdomain_proof(signatures, query.questions[0].qname, zone.depth)
        return Reply(Message(query.header.id, _flags(query, Rcode.NXDOMAIN, True), question,
                             authority=authority), Rcode.NXDOMAIN)

    pool: Pool | None = None
    chosen: tuple[str, ...] = ()
    answer: tuple[Entry, ...] = ()
    additional: tuple[Entry, ...] = ()
    if qtype == RType.ANY:
        # RFC 8482: one RRset, not everything; the SOA at the apex, else the SRV or A (or AAAA) answer.
        srv_owner = name in SRV_SERVICES or web_service(name) is not None
        qtype = RType.SOA if name == APEX else RType.SRV if srv_owner else RType.A
        fixed = table.zone.glue.get(name) or table.zone.targets.get(name)  # a name server's or SRV target's
        if fixed is not None and name != APEX:
            qtype = RType.A if any(t == RType.A for t, _ in fixed) else RType.AAAA
        elif qtype == RType.A and table.pool_for(location, name, RType.A) is None:
            qtype = RType.AAAA
    owner = absolute(name, table.zone.zone)
    sig: bytes | None = None  # the answer RRset's RRSIG RDATA, when DO on a signed zone
    if name == APEX and qtype == RType.SOA:
        answer = (zone.soa(apex),)
        if signatures is not None:
            sig = signatures.lookup(owner, RType.SOA, zone.soa_ttl, (soa_rdata(table),))
    elif name == APEX and qtype == RType.NS:
        answer, additional = zone.nameservers(question.name, apex)
        if signatures is not None:
            sig = signatures.lookup(owner, RType.NS, zone.soa_ttl,
                                    tuple(wire_name(ns.lower()) for ns in table.zone.nameservers))
            additional = _signed_additional(signatures, additional)
    elif name == APEX and qtype in (RType.DNSKEY, RType.CDS, RType.CDNSKEY) and signed:
        published = compiled(table).signatures
        assert published is not None
        rdatas, sigs = published.key_sets[qtype]
        answer = tuple(Record(question.name, qtype, DClass.IN, zone.soa_ttl, (rdata,)) for rdata in rdatas)
        if signatures is not None:  # one RRSIG per published key: either key of a rollover validates the set
            answer += tuple(Record(question.name, RType.RRSIG, DClass.IN, zone.soa_ttl, (s,)) for s in sigs)
    elif qtype in (RType.A, RType.AAAA) and (name in table.zone.glue or name in table.zone.targets):
        answer = zone.addresses(name, RType(qtype), question.name)
        if signatures is not None and answer:
            record = answer[0]
            assert isinstance(record, Record)
            sig = signatures.lookup(owner, qtype, record.ttl, tuple(r.rdata[0] for r in answer
                                                                   if isinstance(r, Record) and isinstance(r.rdata[0], bytes)))
    elif qtype == RType.SRV and name in SRV_SERVICES:
        pool = table.pool_for(location, name, RType.SRV)
        if pool is not None:
            chosen, answer, additional = _srv(zone, pool, question.name, apex, rng)
            if signatures is not None:
                sig = signatures.lookup(owner, RType.SRV, zone.ttl, srv_rdatas(pool, table.zone.zone))
                additional = _signed_additional(signatures, additional)
    elif qtype == RType.SRV and (web := web_service(name)) is not None:
        # apt's _http._tcp.NAME: the mirrors of NAME's pool, targets <mirror>.mirror.NAME (spelled as asked)
        pool = table.web_pool_for(location, name)
        if pool is not None:
            base = web[1]
            parent = ((MIRROR_LABEL.encode(), *question.name[2:]), MIRROR_LABEL if base == APEX
                      else f"{MIRROR_LABEL}.{base}")
            orders = signatures.web.get(id(pool)) if signatures is not None else None
            if signatures is not None and orders is not None and orders.orders:
                # signed: one of the presigned ranked orders (compiler/web_orders.py), never a fresh one
                index = orders.pick(rng)
                chosen, answer, additional = _srv(zone, pool, question.name, apex, rng, parent, ranked=True,
                                                  order=orders.orders[index])
                sig = orders.signatures[index]
                additional = _signed_additional(signatures, additional)
            else:
                chosen, answer, additional = _srv(zone, pool, question.name, apex, rng, parent, ranked=True)
    elif qtype in (RType.A, RType.AAAA):
        rtype = RType(qtype)
        pool = table.pool_for(location, name, rtype)
        if pool is not None:
            answers = zone_wire.answers(pool, rtype)
            index = answers.pick_index(rng)
            chosen = answers.names_at(index)
            answer = (Prerendered(answers.wire_at(index), answers.count_at(index)),)
            if signatures is not None:
                sig = signatures.set_signature(name, answers, index)
    elif signatures is not None and qtype == RType.NSEC:
        # the name's NSEC asked for by type (a validator's or a zone walker's query): it exists, so answered,
        # not denied by itself
        rdata, sig = signatures.nsec(owner)
        answer = (Record(question.name, RType.NSEC, DClass.IN, signatures.nsec_ttl, (rdata,)),)
    elif signatures is not None and qtype == RType.RRSIG:
        answer = _rrsigs_at(query, name, owner, location, table, rng, signatures)
    authority = () if answer else (zone.negative_soa(apex),)  # NODATA (RFC 2308)
    if signatures is not None:
        if answer and sig is not None:
            first = answer[0]
            ttl = first.ttl if isinstance(first, Record) else zone.ttl
            answer += (Record(question.name, RType.RRSIG, DClass.IN, ttl, (sig,)),)
        elif not answer:  # NODATA: the name's NSEC says which types it has
            authority += _soa_rrsig(signatures, table, apex, zone.negative_ttl) + _nsec(signatures, owner, qtype)
    return Reply(Message(query.header.id, _flags(query, Rcode.NOERROR, True), question, answer, authority,
                         additional), Rcode.NOERROR, pool, chosen)


def _rrsigs_at(query: DNSRecord, name: str, owner: str, location: Location, table: ActiveTable, rng: Random,
               signatures: ZoneSignatures) -> tuple[Entry, ...]:
    """A query for type RRSIG: the RRSIGs of the RRsets this client would get at the name, each as its own
    answer carries it, and the NSEC's. (RRSIGs are not signed: validators take such an answer unvalidated; a
    NODATA would be refuted by the name's own NSEC, whose bitmap lists RRSIG.)"""
    found: list[Entry] = []
    for rtype in sorted(signatures.chain.types.get(owner, set()) - {RType.RRSIG, RType.NSEC}):
        reply = _answer(query, name, rtype, location, table, rng, signatures, True)
        found += [e for e in reply.message.answer if isinstance(e, Record) and e.rtype == RType.RRSIG]
    question = _question(query)
    _, sig = signatures.nsec(owner)
    return (*found, Record(question.name, RType.RRSIG, DClass.IN, signatures.nsec_ttl, (sig,)))


def _soa_rrsig(signatures: ZoneSignatures, table: ActiveTable, apex: Name, ttl: int) -> tuple[Entry, ...]:
    """The SOA's RRSIG after a negative answer's SOA (its TTL the negative one, its original TTL the SOA's)."""
    sig = signatures.lookup(table.zone.zone, RType.SOA, table.zone.soa_ttl, (soa_rdata(table),))
    return (Record(apex, RType.RRSIG, DClass.IN, ttl, (sig,)),) if sig is not None else ()


def _signed_additional(signatures: ZoneSignatures, additional: tuple[Entry, ...]) -> tuple[Entry, ...]:
    """The additional section's address RRsets, each whole and followed by its presigned RRSIG (RFC 4035
    3.1.1). The renderer keeps or drops the additional section whole, so an RRSIG never goes without its set."""
    rrsets: dict[tuple[bytes, int], list[Record]] = {}
    for entry in additional:
        if isinstance(entry, Record):
            rrsets.setdefault((b".".join(entry.owner).lower(), entry.rtype), []).append(entry)
    out: list[Entry] = []
    for (owner, rtype), records in rrsets.items():
        out += records
        sig = signatures.addresses.get((owner.decode(), rtype))
        if sig is not None:
            out.append(Record(records[0].owner, RType.RRSIG, DClass.IN, records[0].ttl, (sig,)))
    return tuple(out)


def _nsec(signatures: ZoneSignatures, owner: str, qtype: int | None = None) -> tuple[Entry, ...]:
    rdata, sig = signatures.nsec(owner, qtype)
    labels = name_of(owner)
    return (Record(labels, RType.NSEC, DClass.IN, signatures.nsec_ttl, (rdata,)),
            Record(labels, RType.RRSIG, DClass.IN, signatures.nsec_ttl, (sig,)))


def _nxdomain_proof(signatures: ZoneSignatures, qname: DNSLabel, zone_depth: int) -> tuple[Entry, ...]:
    """RFC 4035 3.1.3.2: the NSEC covering the name, and the one covering the wildcard at its closest
    encloser (often the same record, then sent once). Found by binary search in the presigned chain, on the
    name's labels (as the fast path does: a label may hold a dot)."""
    key = tuple(label.lower() for label in reversed(qname.label))
    covering, wildcard = signatures.chain.proof_owners(key, zone_depth)
    return _nsec(signatures, covering) + (_nsec(signatures, wildcard) if wildcard != covering else ())


def _srv(zone: CompiledZone, pool: Pool, qname: Name, apex: Name, rng: Random,
         parent: tuple[Name, str] | None = None, ranked: bool = False,
         order: tuple[Candidate, ...] | None = None) -> tuple[tuple[str, ...], tuple[Entry, ...], tuple[Entry, ...]]:
    """One SRV record per usable relay (or mirror), in a weighted random order (for clients that take the
    first), the targets' addresses in the additional section. `ranked`: that order is also written as the
    priorities 0, 1, 2, ...: apt ignores SRV weights and picks at random among the lowest priority
    (apt-pkg/contrib/srvrec.cc, PopFromSrvRecs), so its first choice follows the weights only this way, and its
    fallbacks the weighted order after it; it also cuts the order where the answer outgrows apt's 512-byte
    buffer (configuration/web_services.py, apt_records). `order`: a presigned order to write instead of a fresh
    draw (already cut so: cutting it again keeps it whole, and its signature covers it)."""
    if order is None:
        drawn = draw(pool.candidates, pool.weights, len(pool.candidates), rng)
        drawn.sort(key=lambda c: c.tier)  # stable: the weighted order holds within a tier
        order = tuple(drawn)
    if ranked and parent is not None:
        order = order[: apt_records(qname, [(c.name.encode(), *parent[0]) for c in order])]
    answer: list[Entry] = []
    additional: list[Entry] = []
    for rank, candidate in enumerate(order):
        record, targets = zone.srv(candidate, qname, apex, parent, rank if ranked else None)
        answer.append(record)
        additional += targets
    return tuple(c.name for c in order), tuple(answer), tuple(additional)
