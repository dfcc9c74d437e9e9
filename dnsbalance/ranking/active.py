"""The active table: an immutable snapshot of what the server answers, swapped whole after every cycle.

A query reads `server.table` once and uses that snapshot from start to end.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from random import Random
from typing import Mapping

from dnsbalance.configuration.model import DEFAULT_REGION, Level, Region
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import RType
from dnsbalance.protocol.wire import Soa
from dnsbalance.ranking.pool import Candidate, Pool
from dnsbalance.ranking.variants import Variants

__all__ = ["ActiveTable", "Candidate", "Pool", "PoolKey", "PoolLabel", "Tier", "ZoneData", "pool_changes"]



PoolKey = tuple[str, RType]  # (relative owner name, type)


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


EMPTY_TIER = Tier({}, {})


@dataclass(frozen=True)
class ActiveTable:
    generation: int
    zone: ZoneData
    names: frozenset[str]  # every relative owner name that exists, empty non-terminals and "@" included
    countries: Mapping[str, Tier]
    continents: Mapping[str, Tier]
    default: Tier
    seed: int = 0  # for the precomputed draws, so they never consume the query path's random numbers
    networks: Mapping[str, Tier] = field(default_factory=dict)  # by network table name
    asns: Mapping[int, Tier] = field(default_factory=dict)  # by AS number
    # (name, type) that some table other than the default serves: only their answers depend on the client,
    # so only they echo a non-zero ECS scope (RFC 7871 7.2.1)
    regional: frozenset[PoolKey] = frozenset()
    # Precomputed answers per pool, made on first use and kept for this table's life (a memo: the
    # table's meaning never changes).
    _variants: dict[int, Variants] = field(default_factory=dict, compare=False, repr=False)

    def labelled_tiers(self) -> list[tuple[str, Tier]]:
        """Every region's tier, labelled as its pools' region prints ("country JP", ..., "default"), which is
        also how the query counters name it."""
        tiers = [(str(Region(Level.NETWORK, c)), t) for c, t in sorted(self.networks.items())]
        tiers += [(str(Region(Level.ASN, f"AS{c}")), t) for c, t in sorted(self.asns.items())]
        tiers += [(str(Region(Level.COUNTRY, c)), t) for c, t in sorted(self.countries.items())]
        tiers += [(str(Region(Level.CONTINENT, c)), t) for c, t in sorted(self.continents.items())]
        return [*tiers, (str(DEFAULT_REGION), self.default)]

    def variants(self, pool: Pool, rtype: RType) -> Variants:
        found = self._variants.get(id(pool))
        if found is None:
            rng = Random(pool_seed(self.seed, pool, rtype))
            found = self._variants[id(pool)] = Variants(pool, rtype, self.zone.answers, self.zone.ttl, rng,
                                                        self.zone.min_answers)
        return found

    def client_dependent(self, name: str, rtype: int) -> bool:
        """Whether clients in different places can get different answers for this name and type."""
        if rtype == RType.ANY:
            return any((name, t) in self.regional for t in (RType.A, RType.AAAA, RType.SRV))
        return (name, rtype) in self.regional

    def pool_for(self, location: Location, name: str, rtype: RType) -> Pool | None:
        """The client's network tables (longest prefix first), else its AS's, else country, else continent,
        else default; if none has a usable entry, the widest table's configured entries (fail open), so a
        configured name is never answered empty."""
        key = (name, rtype)
        chain = (
            *(self.networks.get(code, EMPTY_TIER) for code in location.networks),
            self.asns.get(location.asn, EMPTY_TIER) if location.asn is not None else EMPTY_TIER,
            self.countries.get(location.country, EMPTY_TIER) if location.country else EMPTY_TIER,
            self.continents.get(location.continent, EMPTY_TIER) if location.continent else EMPTY_TIER,
            self.default,
        )
        for tier in chain:
            pool = tier.usable.get(key)
            if pool is not None:
                return pool
        for tier in reversed(chain):
            pool = tier.fail_open.get(key)
            if pool is not None:
                return pool
        return None


def pool_seed(table_seed: int, pool: Pool, rtype: RType) -> int:
    """The seed of one pool's precomputed draws, from the pool's content (region, type, entries) and the
    table's seed: the same in every process that builds the same table, unlike id() or hash() of strings."""
    text = f"{table_seed}|{pool.region}|{rtype.name}|" + ",".join(f"{c.name}={c.weight}" for c in pool.candidates)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


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
