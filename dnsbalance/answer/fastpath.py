"""The fast path: the common query read by hand and answered from the compiled table (compiler/).

Recognised: a query (QR 0, opcode 0) with one question of class IN for a name in the zone, type A or
AAAA, no other records but an optional OPT (version 0) whose only option may be a client subnet.
Answered: the A/AAAA answer, NODATA and NXDOMAIN; on a signed zone with DO set, the A/AAAA answer with its
set's presigned RRSIG, and NODATA and NXDOMAIN with the SOA's RRSIG and the presigned NSECs that prove them
(found by a binary search in the chain, as the full path finds them). Anything else, or anything odd, returns
None and takes the pipeline's stages (pipeline/), which give the same bytes for the same question and variant
(tests/unit/test_fastpath.py): the same compiled records, written by the same renderer (negative answers: the
same records, the fast path's names uncompressed).
"""
from __future__ import annotations

from collections.abc import Callable
from random import Random
from typing import Protocol

from dnsbalance.answer.native import NativePath
from dnsbalance.answer.tally import Tally
from dnsbalance.compiler.answers import AnswerSets
from dnsbalance.compiler.signatures import ZoneSignatures, absolute
from dnsbalance.compiler.table import CompiledTable
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import PLAIN_UDP_SIZE, TCP_SIZE, Rcode, RType
from dnsbalance.protocol.edns import Subnet, only_client_subnet, udp_limit
from dnsbalance.protocol.renderer import flags, header, opt_record
from dnsbalance.sealed import Sealed
from dnsbalance.stats.counters import AnswerKey, Chosen, QueryKey, client_identity
from dnsbalance.stats.hyperloglog import HyperLogLog

A_IN = b"\x00\x01\x00\x01"
AAAA_IN = b"\x00\x1c\x00\x01"
COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"
COUNTS_EDNS = b"\x00\x01\x00\x00\x00\x00\x00\x01"
OPT_HEAD = b"\x00\x00\x29"
CACHE_LIMIT = 1 << 16  # prepared replies per table; emptied when full

# (client, subnet) -> the location and scope the full path would find
Locate = Callable[[str, Subnet | None], tuple[Location, int | None]]


class Counts(Protocol):
    """Where a query is counted: the answering pipeline's QueryStats."""

    @property
    def clients(self) -> HyperLogLog: ...

    def count(self, key: QueryKey, ecs: bool, answer: AnswerKey | None = None,
              variant: Chosen | None = None) -> None: ...


class Uncounted:
    """Counts nobody reads: for callers that only want the bytes (tests, explain)."""

    clients = HyperLogLog()

    def count(self, key: QueryKey, ecs: bool, answer: AnswerKey | None = None,
              variant: Chosen | None = None) -> None:
        pass


UNCOUNTED: Counts = Uncounted()


class FastPath(Sealed):
    """Built once per compiled table, part of its serving snapshot."""

    __slots__ = ("compiled", "denial_cache", "denial_heads", "ecs", "heads", "native", "parents_cache",
                 "prepared_cache", "prepared_tcp_cache", "table", "zone")

    def __init__(self, compiled: CompiledTable, ecs: bool) -> None:
        self.compiled = compiled
        self.table = compiled.table
        self.zone = compiled.zone
        self.ecs = ecs
        # The cache of prepared replies by (query less its ID, client), this generation's; TCP apart, since
        # its size limit differs.
        self.prepared_cache: dict[tuple[bytes, str], Prepared] = {}
        self.prepared_tcp_cache: dict[tuple[bytes, str], Prepared] = {}
        # Signed zones: the NXDOMAIN proofs by (covering NSEC, wildcard's NSEC) made so far (a random-name flood
        # meets the chain's few spans again and again)
        self.denial_cache: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.parents_cache: dict[bytes, tuple[tuple[bytes, ...], str]] = {}
        # The same for signed NODATA and NXDOMAIN, by (RD, name exists, authority records, OPT)
        self.denial_heads = {(rd, exists, count, opt): header(0, flags(0, rd, Rcode.NOERROR if exists else
                                                                       Rcode.NXDOMAIN, True), 1, 0, count, opt)[2:]
                             for rd in (False, True) for exists in (False, True) for opt in (0, 1) for count in (4, 6)}
        # Reply headers less their ID, as the renderer writes them, by (RD, name exists, answer records,
        # OPT): a handful, made here so that a new query shape costs no header writing.
        self.heads = {(rd, exists, count, opt): header(0, flags(0, rd, Rcode.NOERROR if exists else Rcode.NXDOMAIN,
                                                                True), 1, count, 0 if count else 1, opt)[2:]
                      for rd in (False, True) for exists in (False, True) for opt in (0, 1)
                      for count in range((compiled.table.zone.answers + 1 if exists else 0) + 1)}  # +1: an RRSIG
        # the native path's structures (answer/native.py): its answer table, made before answerers fork, and
        # the answering process's shapes, a cache like prepared_cache
        self.native = NativePath(compiled)

    def answer(self, data: bytes, client: str, locate: Locate, rng: Random, tcp: bool = False,
               stats: Counts = UNCOUNTED) -> bytes | None:
        """The reply, or None for the full path. `locate` is the snapshot's (cached) GeoIP step; `rng` and
        `stats` are the answering pipeline's.

        A query seen before from the same client (same bytes but the ID) is answered from the cache:
        only the variant is drawn, the ID patched in, and the query counted."""
        key = (data[2:], client)
        cache = self.prepared_tcp_cache if tcp else self.prepared_cache
        prepared = cache.get(key)
        if prepared is None:
            prepared = self._miss(key, cache, data, client, locate, tcp, stats)
            if prepared is None:
                return None
        return prepared.reply(data[:2], rng, stats)

    def lookup(self, data: bytes, client: str, locate: Locate, tcp: bool = False,
               stats: Counts = UNCOUNTED) -> Prepared | None:
        """The prepared reply to this query (made and kept on first sight), or None for the full path."""
        key = (data[2:], client)
        cache = self.prepared_tcp_cache if tcp else self.prepared_cache
        prepared = cache.get(key)
        return prepared if prepared is not None else self._miss(key, cache, data, client, locate, tcp, stats)

    def _miss(self, key: tuple[bytes, str], cache: dict[tuple[bytes, str], Prepared], data: bytes, client: str,
              locate: Locate, tcp: bool, stats: Counts) -> Prepared | None:
        prepared = self._prepare(data, client, locate, tcp)
        if prepared is None:
            return None
        stats.clients.add(client_identity(client, prepared.subnet))  # once per query shape
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[key] = prepared
        return prepared

    def _prepare(self, data: bytes, client: str, locate: Locate, tcp: bool) -> Prepared | None:
        size = len(data)
        if size < 17 or data[2] & 0xF8:  # QR set, or an opcode other than QUERY
            return None
        counts = data[4:12]
        if counts != COUNTS_PLAIN and counts != COUNTS_EDNS:
            return None
        end = data.find(b"\x00", 12) + 1
        if end == 0 or end + 4 > size:
            return None
        qtype_class = data[end : end + 4]
        if qtype_class == A_IN:
            rtype = RType.A
        elif qtype_class == AAAA_IN:
            rtype = RType.AAAA
        else:
            return None
        rest = end + 4
        subnet = None
        do = False
        if counts == COUNTS_EDNS:
            # root owner, OPT, class = UDP size, TTL = ext-rcode 0, version 0, flags; then RDLENGTH
            if data[rest : rest + 3] != OPT_HEAD or size < rest + 11 or data[rest + 5 : rest + 7] != b"\x00\x00":
                return None
            limit = udp_limit(int.from_bytes(data[rest + 3 : rest + 5], "big"))
            do = bool(data[rest + 7] & 0x80)
            rdlength = int.from_bytes(data[rest + 9 : rest + 11], "big")
            options = data[rest + 11 :]
            if len(options) != rdlength:
                return None
            if rdlength:
                subnet = only_client_subnet(options)
                if subnet is None:
                    return None  # other options, or a malformed subnet: the full path decides
        elif size != rest:
            return None
        else:
            limit = PLAIN_UDP_SIZE
        if tcp:
            limit = TCP_SIZE

        qname = data[12:end]
        key = qname.lower()
        zone = self.zone
        name = zone.by_wire.get(key, "")
        if name is None:
            return None  # glue or a relay target
        if name == "" and not _plain_name_under(key, zone.wire):
            return None  # outside the zone (REFUSED), or an odd name: full path
        used = subnet if self.ecs else None
        location, scope = locate(client, used)
        table = self.table
        pool = table.pool_for(location, name, rtype) if name else None
        answers = self.compiled.answers(pool, rtype) if pool is not None else None

        if counts == COUNTS_EDNS:
            # scope 0 where the answer is the same for every client (NXDOMAIN, NODATA): RFC 7871 7.2.1
            dependent = bool(name) and scope and table.client_dependent(name, rtype)
            opt: tuple[int, bool, bytes] | None = (
                0, do, used.option(scope or 0 if dependent else 0) if used is not None else b"")
        else:
            opt = None
        rd, exists = bool(data[2] & 0x01), bool(name)
        query_key = (rtype.name, "NOERROR" if name else "NXDOMAIN", location.country or "", location.continent or "")
        ecs = used is not None and used.source > 0
        question = data[12 : end + 4]
        opt_wire = opt_record(*opt) if opt is not None else b""
        arcount = 1 if opt is not None else 0
        signed: tuple[bytes, ...] | None = None
        signatures = self.compiled.signatures
        if do and signatures is not None:
            # signed zone, DO: an answer gets its set's presigned RRSIG record; NXDOMAIN and NODATA the SOA's
            # RRSIG and their NSECs, each with its RRSIG (looked up: neither path signs)
            if answers is None:
                count, records = self._denial(signatures, key, name, rtype)
                head = self.denial_heads[rd, exists, count, arcount]
                fixed = b"".join((head, question, zone.negative_tail(qname), records, opt_wire))
                return Prepared(None, fixed, {}, b"", b"", query_key, ecs, None, used) if len(fixed) + 2 <= limit \
                    else None
            signed = signatures.set_records(name, answers)
            if signed is None:
                return None
        if answers is None:  # NXDOMAIN, or NODATA: the SOA in authority, its owner the zone in the question
            fixed = b"".join((self.heads[rd, exists, 0, arcount], question, zone.negative_tail(qname), opt_wire))
            return Prepared(None, fixed, {}, b"", b"", query_key, ecs, None, used) if len(fixed) + 2 <= limit else None
        extra = max(map(len, signed)) if signed is not None else 0
        heads = {}
        for count in answers.sizes:
            if 14 + len(question) + count * answers.record + extra + len(opt_wire) > limit:
                return None  # some draw would not fit: the full path truncates properly
            heads[count] = self.heads[rd, exists, count + (signed is not None), arcount]
        answer_key = (str(pool.region) if pool is not None else "", name, rtype.name)
        return Prepared(answers, b"", heads, question, opt_wire, query_key, ecs, answer_key, used, signed)


    def _denial(self, signatures: ZoneSignatures, key: bytes, name: str, rtype: RType) -> tuple[int, bytes]:
        """A negative answer's authority records after its SOA, and how many records the authority holds: the
        SOA's RRSIG, then for NODATA the name's NSEC, for NXDOMAIN the NSECs covering the name and the wildcard
        at its closest encloser (RFC 4035 3.1.3), each with its RRSIG."""
        zone = self.table.zone.zone
        if name:
            return 4, signatures.negative_soa_rrsig + signatures.nsec_records(absolute(name, zone), rtype)
        # A flood asks random labels under a few parents: the parent's canonical key and the wildcard's NSEC
        # are kept by the parent's wire form, the covering NSEC found by one binary search
        first = key[1 : 1 + key[0]]
        parent = key[1 + key[0] :]
        chain = signatures.chain
        known = self.parents_cache.get(parent)
        if known is None:
            labels = []
            offset = 0
            while parent[offset]:
                labels.append(parent[offset + 1 : offset + 1 + parent[offset]])
                offset += 1 + parent[offset]
            labels.reverse()  # the chain's canonical order: labels compared from the apex down (RFC 4034 6.1)
            parent_key = tuple(labels)
            known = (parent_key, chain.wildcard_owner(parent_key, self.zone.depth))
            if len(self.parents_cache) >= CACHE_LIMIT:
                self.parents_cache.clear()
            self.parents_cache[parent] = known
        covering, wildcard = chain.covering_key((*known[0], first)), known[1]
        found = self.denial_cache.get((covering, wildcard))
        if found is None:
            records = signatures.negative_soa_rrsig + signatures.nsec_records(covering)
            if wildcard != covering:
                records += signatures.nsec_records(wildcard)
            found = (4 if wildcard == covering else 6, records)
            if len(self.denial_cache) >= CACHE_LIMIT:
                self.denial_cache.clear()
            self.denial_cache[(covering, wildcard)] = found
        return found


class Prepared:
    """A query's reply with everything fixed but the ID and, for answers, the variant drawn; and what to
    count for it: the fields of the Tally the full path's count stage makes (kept apart: a random-name
    flood prepares a reply per query, and each hit reads them)."""

    __slots__ = ("answer_key", "answers", "ecs", "fixed", "heads", "opt", "query_key", "question", "signed",
                 "subnet")

    def __init__(self, answers: AnswerSets | None, fixed: bytes, heads: dict[int, bytes], question: bytes,
                 opt: bytes, query_key: QueryKey, ecs: bool, answer_key: AnswerKey | None,
                 subnet: Subnet | None, signed: tuple[bytes, ...] | None = None) -> None:
        self.answers, self.fixed, self.heads, self.question, self.opt = answers, fixed, heads, question, opt
        self.query_key, self.ecs, self.answer_key, self.subnet = query_key, ecs, answer_key, subnet
        self.signed = signed  # DO on a signed zone: the RRSIG record of each answer set (after its records)

    @property
    def tally(self) -> Tally:
        return Tally(self.query_key, self.ecs, self.answer_key)

    def reply(self, ident: bytes, rng: Random, stats: Counts = UNCOUNTED) -> bytes:
        answers = self.answers
        if answers is None:
            stats.count(self.query_key, self.ecs)
            return ident + self.fixed
        index = answers.pick_index(rng)
        stats.count(self.query_key, self.ecs, self.answer_key, (answers, index))
        signed = self.signed
        if signed is not None:
            return b"".join((ident, self.heads[answers.count_at(index)], self.question, answers.wire_at(index),
                             signed[answers.variants.sets[index]], self.opt))
        return b"".join((ident, self.heads[answers.count_at(index)], self.question, answers.wire_at(index),
                         self.opt))


def _plain_name_under(wire: bytes, apex: bytes) -> bool:
    """Uncompressed labels of 1..63 octets ending exactly at the root, 255 octets at most, the last of them the
    apex's (`apex` lower case; `wire` too): a label boundary, not just the bytes, where the apex begins
    (the label `deb\\003cdn` ends with the bytes of the label `cdn` and is not below it)."""
    if len(wire) > 255:
        return False
    apex_at = len(wire) - len(apex)
    under = False
    offset = 0
    while True:
        if offset == apex_at:
            under = wire[offset:] == apex
        length = wire[offset]
        if length == 0:
            return under and offset == len(wire) - 1
        if length > 63:
            return False
        offset += 1 + length
        if offset >= len(wire):
            return False
