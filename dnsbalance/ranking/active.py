"""The active table: an immutable snapshot of what the server answers, swapped whole after every cycle.

A query reads `server.table` once and uses that snapshot from start to end.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from dnsbalance.configuration.model import DEFAULT_REGION, Level, Region
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import RType
from dnsbalance.protocol.wire import Soa
from dnsbalance.ranking.pool import Candidate, Chain, Judgement, LeftOut, Pool
from dnsbalance.ranking.variants import VariantKey, Variants, key_seed, variant_key

__all__ = ["ActiveTable", "Candidate", "Pool", "PoolKey", "PoolLabel", "Tier", "ZoneData", "pool_changes"]



PoolKey = tuple[str, RType]  # (relative owner name, type)


class TableCaches:
    """What a table computes on first use and keeps for its life: caches, not state, since the table's
    meaning never changes. The variants (ranking/variants.py) by pool identity (the query path's lookup),
    by content (shared by identical pools), and the previous table's by content while this one is being
    filled; and the table's compiled form (compiler/table.py), which this layer only holds."""

    __slots__ = ("by_pool", "compiled", "computed", "inherited", "own")

    def __init__(self) -> None:
        self.computed = 0  # Variants made (not found in `own` or `inherited`)
        self.by_pool: dict[int, Variants] = {}
        self.own: dict[VariantKey, Variants] = {}
        self.inherited: dict[VariantKey, Variants] = {}
        self.compiled: object | None = None


@dataclass(frozen=True)
class ZoneData:
    """The fixed part of the zone: apex records and name-server glue."""

    zone: str  # lower case, no trailing dot
    ttl: int
    soa_ttl: int
    negative_ttl: int
    soa: Soa
    nameservers: tuple[str, ...]  # absolute names
    glue: Mapping[str, tuple[tuple[RType, str], ...]]  # relative owner -> (type, address)
    targets: Mapping[str, tuple[tuple[RType, str], ...]]  # SRV targets "<relay>.relay" -> (type, address)
    answers: int
    min_answers: int = 1
    nsid: bytes | None = None


@dataclass(frozen=True)
class Tier:
    """One region's table: the usable pools, and for names with nothing usable the configured ones."""

    usable: Mapping[PoolKey, Pool]
    fail_open: Mapping[PoolKey, Pool]
    # Why, as the builder decided it (for explain, plan, the status page; never read by a query): the
    # entries each (name, type) does not draw from, only where there are some; and for the names it lists
    # but does not serve from its own usable entries, the tables its clients go through.
    left_out: Mapping[PoolKey, tuple[LeftOut, ...]] = field(default_factory=dict)
    chains: Mapping[PoolKey, Chain] = field(default_factory=dict)
    # apt's SRV sets (`_http._tcp.deb`, configuration/web_services.py), kept apart: made from the same entries
    # as the A/AAAA pools above, they are not pools of their own for the status page, metrics or plan.
    web: Tier | None = None


EMPTY_TIER = Tier({}, {})


@dataclass(frozen=True)
class ActiveTable:
    generation: int
    zone: ZoneData
    names: frozenset[str]  # every relative owner name that exists, empty non-terminals and "@" included
    countries: Mapping[str, Tier]
    continents: Mapping[str, Tier]
    default: Tier
    seed: int = 0  # drawn from the table's inputs (answers draw from their pool's content: ranking/variants.py)
    networks: Mapping[str, Tier] = field(default_factory=dict)  # by network table name
    asns: Mapping[int, Tier] = field(default_factory=dict)  # by AS number
    # (name, type) that some table other than the default serves: only their answers depend on the client,
    # so only they echo a non-zero ECS scope (RFC 7871 7.2.1)
    regional: frozenset[PoolKey] = frozenset()
    # How the builder judged each health key (every mirror, per archive it carries, and relay service)
    judged: Mapping[str, Judgement] = field(default_factory=dict)
    # Precomputed answers per pool content and the compiled table, made on first use (or by precompute())
    # and kept for this table's life. `inherited` holds the previous table's, so that pools a rebuild
    # leaves alone are not computed again.
    caches: TableCaches = field(default_factory=lambda: TableCaches(), compare=False, repr=False)

    def labelled_tiers(self) -> list[tuple[str, Tier]]:
        """Every region's tier, labelled as its pools' region prints ("country JP", ..., "default"), which is
        also how the query counters name it."""
        tiers = [(str(Region(Level.NETWORK, c)), t) for c, t in sorted(self.networks.items())]
        tiers += [(str(Region(Level.ASN, f"AS{c}")), t) for c, t in sorted(self.asns.items())]
        tiers += [(str(Region(Level.COUNTRY, c)), t) for c, t in sorted(self.countries.items())]
        tiers += [(str(Region(Level.CONTINENT, c)), t) for c, t in sorted(self.continents.items())]
        return [*tiers, (str(DEFAULT_REGION), self.default)]

    def has_variants(self, pool: Pool) -> bool:
        return id(pool) in self.caches.by_pool

    def variants(self, pool: Pool, rtype: RType) -> Variants:
        caches = self.caches
        found = caches.by_pool.get(id(pool))
        if found is None:
            zone = self.zone
            key = variant_key(pool, rtype, zone.answers, zone.ttl, zone.min_answers)
            found = caches.own.get(key) or caches.inherited.get(key)
            if found is None:
                found = Variants(pool, rtype, zone.answers, zone.ttl, key_seed(key), zone.min_answers)
                caches.computed += 1
            caches.own[key] = found
            caches.by_pool[id(pool)] = found  # the pool objects live as long as the table
        return found

    def address_pools(self) -> Iterator[tuple[Pool, RType]]:
        """Every A and AAAA pool of every region."""
        for _, tier in self.labelled_tiers():
            for pools in (tier.usable, tier.fail_open):
                for (_, rtype), pool in pools.items():
                    if rtype in (RType.A, RType.AAAA):
                        yield pool, rtype

    def precompute(self, inherit: ActiveTable | None = None, deadline: float | None = None) -> int:
        """Make every pool's answers now, reusing `inherit`'s for pools with the same content, so that
        the processes that answer from this table never compute them under a query. Returns how many
        were computed afresh. With a `deadline` (time.monotonic()), stops there; the rest stays lazy."""
        caches = self.caches
        before = caches.computed
        with self.inheriting(inherit):
            for pool, rtype in self.address_pools():
                if id(pool) not in caches.by_pool:
                    self.variants(pool, rtype)
                    if deadline is not None and time.monotonic() > deadline:
                        break
        return caches.computed - before

    @contextmanager
    def inheriting(self, inherit: ActiveTable | None) -> Iterator[None]:
        """While open, variants() takes a pool's values from `inherit` where it has a pool of the same content
        rather than computing them (the next table after a health change: most pools are unchanged)."""
        caches = self.caches
        if inherit is not None:
            caches.inherited = {**inherit.caches.inherited, **inherit.caches.own}
        try:
            yield
        finally:
            caches.inherited = {}  # only what this table uses is kept

    def client_dependent(self, name: str, rtype: int) -> bool:
        """Whether clients in different places can get different answers for this name and type."""
        if rtype == RType.ANY:
            return any((name, t) in self.regional for t in (RType.A, RType.AAAA, RType.SRV))
        return (name, rtype) in self.regional

    def pool_for(self, location: Location, name: str, rtype: RType) -> Pool | None:
        """The client's network tables (longest prefix first), else its AS's, else country, else continent,
        else default; if none has a usable entry, the widest table's configured entries (fail open), so a
        configured name is never answered empty."""
        return self._pool_in((name, rtype), self._chain(location))

    def web_pool_for(self, location: Location, owner: str) -> Pool | None:
        """The SRV set of `_http._tcp.NAME` / `_https._tcp.NAME` for this client, by the same way as NAME's
        A answers."""
        return self._pool_in((owner, RType.SRV), tuple(t.web or EMPTY_TIER for t in self._chain(location)))

    def _chain(self, location: Location) -> tuple[Tier, ...]:
        return (
            *(self.networks.get(code, EMPTY_TIER) for code in location.networks),
            self.asns.get(location.asn, EMPTY_TIER) if location.asn is not None else EMPTY_TIER,
            self.countries.get(location.country, EMPTY_TIER) if location.country else EMPTY_TIER,
            self.continents.get(location.continent, EMPTY_TIER) if location.continent else EMPTY_TIER,
            self.default,
        )

    @staticmethod
    def _pool_in(key: PoolKey, chain: tuple[Tier, ...]) -> Pool | None:
        for tier in chain:
            pool = tier.usable.get(key)
            if pool is not None:
                return pool
        for tier in reversed(chain):
            pool = tier.fail_open.get(key)
            if pool is not None:
                return pool
        return None


PoolLabel = tuple[str, str, str]  # (region label, owner name, type name): how counters and the status name a pool


def _pools(table: ActiveTable) -> dict[PoolLabel, tuple[tuple[str, int], ...]]:
    return {(label, name, rtype.name): tuple((c.name, c.weight) for c in pool.candidates)
            for label, tier in table.labelled_tiers()
            for (name, rtype), pool in {**tier.usable, **tier.fail_open}.items()}


def pool_changes(before: ActiveTable | None, after: ActiveTable, since: Mapping[PoolLabel, float],
                 now: float) -> dict[PoolLabel, float]:
    """When each pool of `after` last changed its entries or weights (`now` for a new or changed one), so
    observed shares can be read since the shares they should follow came into force."""
    old = _pools(before) if before is not None else {}
    return {label: since.get(label, now) if old.get(label) == entries else now
            for label, entries in _pools(after).items()}
