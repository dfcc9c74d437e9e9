"""The zone's fixed records, compiled once per table: SOA, NS with glue, the glue and relay- and mirror-target
addresses, SRV data, negative answers, and the fast path's lookup of names by their wire form.

What can be fixed is: RDATA, TTLs, which records go where. Owners are filled in per query (a reply spells
the zone with the question's letter case, and names point into the question), and the renderer
(protocol/renderer.py) writes the whole.
"""
from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType

from dnsbalance.configuration.model import APEX, RELAY_LABEL
from dnsbalance.protocol.codes import TCP_SIZE, DClass, RType
from dnsbalance.protocol.renderer import (
    HEADER,
    Compressed,
    Entry,
    Message,
    Name,
    Question,
    Record,
    Whole,
    address_rdata,
    name_of,
    render,
    wire_name,
)
from dnsbalance.ranking.active import ZoneData
from dnsbalance.ranking.pool import Candidate
from dnsbalance.sealed import Sealed

Addresses = tuple[tuple[RType, bytes], ...]  # (type, RDATA) in configuration order
HEADER_SIZE = HEADER.size
NEGATIVE_LIMIT = 1 << 12  # negative-answer tails kept: a few per name length in practice


def _labels(wire: bytes) -> Name:
    """A plain (uncompressed) name's labels."""
    labels, offset = [], 0
    while wire[offset]:
        end = offset + 1 + wire[offset]
        labels.append(wire[offset + 1 : end])
        offset = end
    return tuple(labels)


def _addresses(entries: tuple[tuple[RType, str], ...]) -> Addresses:
    return tuple((rtype, address_rdata(address)) for rtype, address in entries)


class CompiledZone(Sealed):
    """Built once per table from its ZoneData and names; read by both answer paths."""

    __slots__ = ("by_wire", "depth", "glue", "name", "negative_cache", "negative_ttl", "ns_glue", "ns_rdata",
                 "soa_rdata", "soa_suffixes", "soa_ttl", "targets", "ttl", "wire")

    def __init__(self, zone: ZoneData, names: frozenset[str]) -> None:
        self.name = zone.zone
        self.depth = zone.zone.count(".") + 1  # labels of the apex
        self.ttl, self.soa_ttl, self.negative_ttl = zone.ttl, zone.soa_ttl, zone.negative_ttl
        soa = zone.soa
        self.soa_rdata = (Compressed(name_of(soa.mname)), Compressed(name_of(soa.rname)),
                          struct.pack("!IIIII", soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum))
        self.ns_rdata = tuple((Compressed(name_of(ns)),) for ns in zone.nameservers)
        # every suffix of the SOA's names in wire form: what a question's name can lend them by compression
        self.soa_suffixes = frozenset(wire_name(".".join(name.split(".")[i:]))
                                      for name in (soa.mname, soa.rname) for i in range(name.count(".") + 1))
        # the fast path's negative answers: the SOA record after a plain question, by what decides its bytes
        self.negative_cache: dict[tuple[int, bytes], bytes] = {}
        self.glue = MappingProxyType({name: _addresses(entries) for name, entries in zone.glue.items()})
        self.targets = MappingProxyType({name: _addresses(entries) for name, entries in zone.targets.items()})
        # name servers inside the zone: (owner below the apex, its glue)
        self.ns_glue = tuple((name_of(ns[: -len(zone.zone) - 1]), self.glue.get(ns[: -len(zone.zone) - 1], ()))
                             for ns in zone.nameservers if ns.endswith("." + zone.zone))
        # The fast path's lookup: every existing name in lower-case wire format; None marks glue and relay
        # targets, which the full path answers.
        self.wire = wire_name(zone.zone)
        self.by_wire: Mapping[bytes, str | None] = MappingProxyType({
            wire_name(zone.zone if n == APEX else f"{n}.{zone.zone}"):
                None if n in zone.glue or n in zone.targets else n
            for n in names
        })

    def soa(self, apex: Name) -> Record:
        return Record(apex, RType.SOA, DClass.IN, self.soa_ttl, self.soa_rdata)

    def negative_soa(self, apex: Name) -> Record:
        """The SOA of NXDOMAIN and NODATA answers, its TTL the negative one (RFC 2308)."""
        return Record(apex, RType.SOA, DClass.IN, self.negative_ttl, self.soa_rdata)

    def negative_tail(self, qname: bytes) -> bytes:
        """The SOA record of a negative answer as the renderer writes it after the question `qname` (plain
        wire format, letter case as asked), from a cache. Its bytes depend on the name's length (where the
        apex stands) and on its longest suffix that is also a suffix of the SOA's names (what they can
        point to), nothing else: the names' other suffixes are never looked up."""
        shared, offset = b"", 0
        while qname[offset]:
            if qname[offset:] in self.soa_suffixes:
                shared = qname[offset:]
                break
            offset += 1 + qname[offset]
        key = (len(qname), shared)
        found = self.negative_cache.get(key)
        if found is None:
            labels = _labels(qname)
            message = Message(0, 0, Question(labels, 0, 0), authority=(self.negative_soa(labels[-self.depth :]),))
            found = render(message, TCP_SIZE).wire[HEADER_SIZE + len(qname) + 4 :]
            if len(self.negative_cache) >= NEGATIVE_LIMIT:
                self.negative_cache.clear()
            self.negative_cache[key] = found
        return found

    def nameservers(self, qname: Name, apex: Name) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
        """The NS RRset (owner as asked) and the glue of the name servers inside the zone."""
        answer = tuple(Record(qname, RType.NS, DClass.IN, self.soa_ttl, rdata) for rdata in self.ns_rdata)
        glue = tuple(Record(owner + apex, rtype, DClass.IN, self.soa_ttl, (rdata,))
                     for owner, addresses in self.ns_glue for rtype, rdata in addresses)
        return answer, glue

    def addresses(self, name: str, rtype: RType, qname: Name) -> tuple[Entry, ...]:
        """A or AAAA of a glue name (the SOA's TTL) or of a relay target (the answers' TTL)."""
        if name in self.glue:
            found, ttl = self.glue[name], self.soa_ttl
        else:
            found, ttl = self.targets.get(name, ()), self.ttl
        return tuple(Record(qname, t, DClass.IN, ttl, (rdata,)) for t, rdata in found if t == rtype)

    def srv(self, candidate: Candidate, qname: Name, apex: Name, parent: tuple[Name, str] | None = None,
            priority: int | None = None) -> tuple[Record, tuple[Entry, ...]]:
        """One relay's (or mirror's) SRV record and its target's addresses (for the additional section).
        `parent`: the target's parent as labels and relative name (a mirror's `mirror.deb`); None: a relay's.
        `priority`: the SRV priority field; None: the entry's tier."""
        labels, relative = parent or ((RELAY_LABEL.encode(), *apex), RELAY_LABEL)
        target = (candidate.name.encode(), *labels)
        fields = (candidate.tier if priority is None else priority, candidate.weight, candidate.port)
        record = Record(qname, RType.SRV, DClass.IN, self.ttl, (struct.pack("!HHH", *fields), Whole(target)))
        addresses = self.targets.get(f"{candidate.name.lower()}.{relative}", ())
        return record, tuple(Record(target, t, DClass.IN, self.ttl, (rdata,)) for t, rdata in addresses)
