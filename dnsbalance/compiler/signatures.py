"""A table's DNSSEC signatures, made once in the supervisor's build (CompiledTable.sign), read by the answer
path: RRSIGs for every authoritative RRset (weighted A/AAAA sets per distinct set, SOA, NS, DNSKEY, relay SRV
sets, apt's SRV orders, in-zone addresses: glue and SRV targets) and the NSEC chain with its RRSIGs. A query
looks signatures up; it never signs.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable

from dnsbalance.compiler.answers import AnswerSets
from dnsbalance.compiler.web_orders import WebOrders
from dnsbalance.configuration.model import APEX, MIRROR_LABEL, RELAY_LABEL, SRV_SERVICES
from dnsbalance.configuration.web_services import mirror_target, web_service
from dnsbalance.dnssec.keys import ds_rdata
from dnsbalance.dnssec.nsec import Chain
from dnsbalance.dnssec.signer import Cached, Signer, canonical_name, signing_engine
from dnsbalance.protocol.codes import DClass, RType
from dnsbalance.protocol.renderer import RECORD_HEAD, address_rdata, name_of, wire_name
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.pool import Candidate, Pool
from dnsbalance.ranking.variants import Variants

Content = tuple[str, int, int, tuple[bytes, ...]]  # (owner, type, TTL, sorted RDATA): what a signature covers


def absolute(name: str, zone: str) -> str:
    return zone if name == APEX else f"{name}.{zone}"


def soa_rdata(table: ActiveTable) -> bytes:
    soa = table.zone.soa
    return wire_name(soa.mname) + wire_name(soa.rname) + struct.pack("!IIIII", soa.serial, soa.refresh, soa.retry,
                                                                     soa.expire, soa.minimum)


def srv_rdatas(pool: Pool, zone: str) -> tuple[bytes, ...]:
    """A relay pool's SRV RDATA in canonical form (the target written whole, lower case)."""
    return tuple(struct.pack("!HHH", c.tier, c.weight, c.port) + wire_name(f"{c.name}.{RELAY_LABEL}.{zone}".lower())
                 for c in pool.candidates)


def web_targets(pool: Pool, owner: str, zone: str) -> dict[str, bytes]:
    """An apt SRV pool's targets `<mirror>.mirror.NAME.<zone>` in canonical form, by mirror."""
    service = web_service(owner)
    assert service is not None
    return {c.name: canonical_name(absolute(mirror_target(c.name, service[1]), zone)) for c in pool.candidates}


def web_rdatas(order: tuple[Candidate, ...], targets: dict[str, bytes]) -> tuple[bytes, ...]:
    """An apt SRV order's RDATA in canonical form: priority the rank, targets from web_targets."""
    return tuple(_SRV_FIELDS.pack(rank, c.weight, c.port) + targets[c.name] for rank, c in enumerate(order))


_SRV_FIELDS = struct.Struct("!HHH")


RRSIG_HEAD = struct.Struct("!HHHIH")  # owner pointer, type, class, TTL, RDLENGTH
QUESTION_POINTER = 0xC000 | 12  # the question's name, right after the header


def rrsig_record(rdata: bytes, ttl: int) -> bytes:
    """An RRSIG record whose owner is the question's name, as the renderer writes it after an answer."""
    return RRSIG_HEAD.pack(QUESTION_POINTER, RType.RRSIG, DClass.IN, ttl, len(rdata)) + rdata


def set_rdatas(answers: AnswerSets, index: int) -> tuple[bytes, ...]:
    """The A or AAAA RDATA of one variant (each record: pointer, type, class, TTL, length, RDATA)."""
    wire, size = answers.wire_at(index), answers.record
    return tuple(wire[at + 12 : at + size] for at in range(0, len(wire), size))


class ZoneSignatures:
    """What the answer path reads: signatures by RRset content, per weighted set, per in-zone address RRset,
    per apt SRV order, and the NSEC chain (with the NSECs a region's NODATA needs)."""

    __slots__ = ("addresses", "algorithm", "by_content", "chain", "dnskey", "engine", "key_sets", "keys", "made",
                 "negative_soa_rrsig", "nsec_ttl", "seconds", "set_contents", "sets", "signed_by", "tag", "web",
                 "web_content", "window", "without")
    # for the next rebuild: per pool's variants, the content of each distinct set; per apt SRV pool (balanced
    # name, candidates), its orders and their contents
    set_contents: dict[tuple[str, Variants], tuple[Cached, ...]]
    web_content: dict[tuple[str, tuple[Candidate, ...]], tuple[WebOrders, tuple[Cached, ...]]]

    def __init__(self, table: ActiveTable, signer: Signer, answers: Iterable[tuple[tuple[str, RType], AnswerSets]],
                 previous: ZoneSignatures | None = None) -> None:
        """Asks the signer for every RRset's signature while walking the table (`answers`: every A and AAAA pool's,
        CompiledTable.address_answers), waits for them (made in signing threads meanwhile), then writes them
        where the answer path reads them. `previous`: the table before's, whose
        weighted sets and apt orders are taken whole where the pool is the same and so are the keys and window
        (a rebuild after a health change then walks only what changed)."""
        zone = table.zone
        apex = zone.zone
        self.dnskey = signer.key.dnskey
        self.tag = signer.key.tag
        self.algorithm = signer.key.algorithm
        # every DNSKEY published: (tag, algorithm, role), the signing key first
        self.keys: tuple[tuple[int, int, str], ...] = ((self.tag, int(self.algorithm), "signing"),
                                                       *((k.tag, int(k.algorithm), role) for k, role in signer.others))
        self.window = signer.window
        self.nsec_ttl = zone.negative_ttl
        # what a signature taken from `previous` depends on besides its RRset: the keys, window, zone and TTL
        self.signed_by = (signer.window, signer.key.dnskey, tuple(k.dnskey for k, _ in signer.others), apex, zone.ttl)
        if previous is not None and previous.signed_by != self.signed_by:
            previous = None
        types: dict[str, set[int]] = {absolute(n, apex): {RType.RRSIG, RType.NSEC} for n in table.names}
        types.setdefault(apex, {RType.RRSIG, RType.NSEC}).update((RType.SOA, RType.NS, RType.DNSKEY))
        pooled: set[tuple[str, int]] = set()  # (owner, type) that regions answer from pools: may be NODATA somewhere
        asked: list[Cached] = []  # the signing key's requests besides sets and orders (which `sets` and
        # `web_shared` keep): by_content holds the signatures of all

        def request(owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...]) -> Cached:
            cached = signer.request(owner, rtype, ttl, rdatas)
            asked.append(cached)
            return cached

        try:
            soa = request(apex, RType.SOA, zone.soa_ttl, (soa_rdata(table),))
            request(apex, RType.NS, zone.soa_ttl, tuple(wire_name(ns.lower()) for ns in zone.nameservers))
            # The apex RRsets that name keys: DNSKEY (every key published) and, for parents that scan for them
            # (RFC 7344, 8078), CDS and CDNSKEY (the keys the parent's DS should point to); each signed by every
            # published key, so that a resolver trusting either key of a rollover validates them.
            parent = signer.for_parent or (signer.key,)
            key_sets = {rtype: (rdatas, signer.request_by_all(apex, rtype, zone.soa_ttl, rdatas)) for rtype, rdatas in (
                (RType.DNSKEY, (self.dnskey, *(k.dnskey for k, _ in signer.others))),
                (RType.CDS, tuple(ds_rdata(apex, k) for k in parent)),
                (RType.CDNSKEY, tuple(k.dnskey for k in parent)))}
            asked.extend(requests[0] for _, requests in key_sets.values())
            types[apex].update((RType.CDS, RType.CDNSKEY))
            addresses: dict[tuple[str, int], Cached] = {}
            for name, entries, ttl in [*((n, e, zone.soa_ttl) for n, e in zone.glue.items()),
                                       *((n, e, zone.ttl) for n, e in zone.targets.items())]:
                owner = absolute(name, apex).lower()
                for rtype in {t for t, _ in entries}:
                    addresses[(owner, rtype)] = request(owner, rtype, ttl,
                                                        tuple(address_rdata(a) for t, a in entries if t == rtype))
                    types.setdefault(owner, {RType.RRSIG, RType.NSEC}).add(rtype)
            # per pool's variants: the content of each distinct set, by set number
            sets: dict[tuple[str, Variants], list[Cached] | tuple[Cached, ...]] = {}
            kept: dict[tuple[str, Variants], tuple[bytes, ...]] = {}  # the sets' RRSIG records taken from `previous`
            for (name, rtype), answer_sets in answers:
                key = (name, answer_sets.variants)
                if key in sets:
                    continue
                owner = absolute(name, apex)
                types.setdefault(owner, {RType.RRSIG, RType.NSEC}).add(rtype)
                pooled.add((owner, rtype))
                if previous is not None and key in previous.sets:
                    sets[key] = previous.set_contents[key]
                    kept[key] = previous.sets[key]
                    signer.keep(sets[key], previous.by_content)
                    continue
                by_set = sets[key] = []
                numbers = answer_sets.variants.sets
                for index in range(len(answer_sets)):
                    if numbers[index] == len(by_set):  # a set's first variant (numbered in order of first use)
                        by_set.append(signer.request(owner, rtype, zone.ttl, set_rdatas(answer_sets, index)))
            web_shared: dict[tuple[str, tuple[Candidate, ...]], tuple[WebOrders, tuple[Cached, ...]]] = {}
            self.web: dict[int, WebOrders] = {}  # id() of an apt SRV pool (alive as long as the table) -> its orders
            for _, tier in table.labelled_tiers():
                for pools in (tier.usable, tier.fail_open):
                    for (name, rtype), pool in pools.items():
                        if rtype == RType.SRV and name in SRV_SERVICES:
                            owner = absolute(name, apex)
                            types.setdefault(owner, {RType.RRSIG, RType.NSEC}).add(RType.SRV)
                            pooled.add((owner, RType.SRV))
                            request(owner, RType.SRV, zone.ttl, srv_rdatas(pool, apex))
                for pools in (tier.web.usable, tier.web.fail_open) if tier.web is not None else ():
                    for (name, _), pool in pools.items():
                        owner = absolute(name, apex)
                        types.setdefault(owner, {RType.RRSIG, RType.NSEC}).add(RType.SRV)
                        pooled.add((owner, RType.SRV))
                        content = (name, pool.candidates)
                        found = web_shared.get(content)
                        if found is None and previous is not None:
                            found = previous.web_content.get(content)
                            if found is not None:
                                web_shared[content] = found
                                signer.keep(found[1], previous.by_content)
                        if found is None:  # pools of the same content share their orders
                            base = web_service(name)
                            assert base is not None
                            orders = WebOrders(pool, name_of(owner), (MIRROR_LABEL.encode(),
                                                                      *name_of(absolute(base[1], apex))))
                            targets = web_targets(pool, name, apex)
                            found = web_shared[content] = (orders, tuple(
                                signer.request(owner, RType.SRV, zone.ttl, web_rdatas(order, targets))
                                for order in orders.orders))
                        self.web[id(pool)] = found[0]
            self.chain = Chain(types)
            for owner, rdata in self.chain.rdata.items():
                request(owner, RType.NSEC, self.nsec_ttl, (rdata,))
            # A region without a type another region has at the name proves its NODATA with an NSEC listing the
            # name's types but that one (docs/dnssec.md says why not the region's exact types)
            without: dict[tuple[str, int], tuple[bytes, Cached]] = {}
            for owner, missing in pooled:
                rdata = self.chain.with_types(owner, self.chain.types[owner] - {missing})
                without[(owner, missing)] = (rdata, request(owner, RType.NSEC, self.nsec_ttl, (rdata,)))
        finally:
            signer.finish()

        signature = signer.signature
        asked.extend(c for contents in sets.values() for c in contents)
        asked.extend(c for _, contents in web_shared.values() for c in contents)
        self.by_content: dict[Content, bytes] = {cached: signature(cached) for cached in asked}
        soa_sig = signature(soa)
        # the SOA's RRSIG after a negative answer's SOA, as the fast path appends it (the apex written whole)
        self.negative_soa_rrsig = (canonical_name(apex) + RECORD_HEAD.pack(RType.RRSIG, DClass.IN, zone.negative_ttl,
                                                                           len(soa_sig)) + soa_sig)
        # type -> (RDATA in order, RRSIG RDATAs)
        self.key_sets: dict[int, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {
            rtype: (rdatas, tuple(map(signature, requests))) for rtype, (rdatas, requests) in key_sets.items()}
        # (owner absolute lower case, type) -> RRSIG of the glue's and SRV targets' A/AAAA (answers and additional)
        self.addresses: dict[tuple[str, int], bytes] = {key: signature(c) for key, c in addresses.items()}
        # (owner relative, the AnswerSets' variants) -> one RRSIG record per distinct set (variants.sets), in wire
        # form after an answer to the question (owner a pointer to it): both paths write these bytes
        self.sets: dict[tuple[str, Variants], tuple[bytes, ...]] = {
            key: kept.get(key) or tuple(rrsig_record(signature(c), zone.ttl) for c in by_set)
            for key, by_set in sets.items()}
        self.set_contents = {key: tuple(contents) for key, contents in sets.items()}
        for orders, requests in web_shared.values():
            if not orders.signatures:
                orders.signatures = tuple(map(signature, requests))
        self.web_content = web_shared
        # (owner absolute, type) -> the NSEC (and its RRSIG) of a NODATA for a type the name has in some region
        self.without: dict[tuple[str, int], tuple[bytes, bytes]] = {
            key: (rdata, signature(c)) for key, (rdata, c) in without.items()}
        self.made, self.seconds = signer.made, signer.seconds
        self.engine = signing_engine()  # what signed: the status page and metrics say so

    def lookup(self, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...]) -> bytes | None:
        return self.by_content.get((owner.lower(), rtype, ttl, tuple(sorted(set(rdatas)))))

    def set_signature(self, name: str, answers: AnswerSets, index: int) -> bytes | None:
        """The RRSIG RDATA of one variant's set."""
        found = self.set_records(name, answers)
        return found[answers.variants.sets[index]][RRSIG_HEAD.size :] if found is not None else None

    def set_records(self, name: str, answers: AnswerSets) -> tuple[bytes, ...] | None:
        """The RRSIG records of a pool's sets (by set number), as the fast path appends them."""
        return self.sets.get((name, answers.variants))

    def nsec(self, owner: str, qtype: int | None = None) -> tuple[bytes, bytes]:
        """An NSEC RDATA and its RRSIG RDATA: the chain's, or with `qtype`, the NODATA proof for that type
        (the name's NSEC without it, where some region has it)."""
        if qtype is not None:
            found = self.without.get((owner, qtype))
            if found is not None:
                return found
        rdata = self.chain.rdata[owner]
        return rdata, self.by_content[(owner.lower(), RType.NSEC, self.nsec_ttl, (rdata,))]

    def nsec_records(self, owner: str, qtype: int | None = None) -> bytes:
        """The NSEC at `owner` (as nsec() picks it) and its RRSIG in wire form, each owner written whole: what
        the fast path appends to a negative answer."""
        rdata, sig = self.nsec(owner, qtype)
        name, ttl = canonical_name(owner), self.nsec_ttl
        return (name + RECORD_HEAD.pack(RType.NSEC, DClass.IN, ttl, len(rdata)) + rdata
                + name + RECORD_HEAD.pack(RType.RRSIG, DClass.IN, ttl, len(sig)) + sig)

    @property
    def earliest_expiry(self) -> int:
        return self.window.expiration
