"""The tables a region's clients go through for one owner name and type (its own, then wider ones), as the
table builder records them where a region does not serve a name itself, and as explain and plan read them."""
from __future__ import annotations

from collections.abc import Callable

from dnsbalance.configuration.model import DEFAULT_REGION, Level, Region
from dnsbalance.geo.countries import continent_of
from dnsbalance.ranking.active import ActiveTable, PoolKey, Tier
from dnsbalance.ranking.pool import Chain, Tried


def wider(region: Region) -> Region | None:
    """The next table a region's clients go to when their own has nothing usable. Past a network or AS table
    it is their country's, which the region alone does not tell: the way stops there."""
    if region.level is Level.COUNTRY:
        continent = continent_of(region.code)
        return Region(Level.CONTINENT, continent) if continent else DEFAULT_REGION
    if region.level is Level.CONTINENT:
        return DEFAULT_REGION
    return None


def tier_of(table: ActiveTable, region: Region) -> Tier | None:
    if region.level is Level.COUNTRY:
        return table.countries.get(region.code)
    if region.level is Level.CONTINENT:
        return table.continents.get(region.code)
    if region.level is Level.NETWORK:
        return table.networks.get(region.code)
    if region.level is Level.ASN:
        return table.asns.get(int(region.code.removeprefix("AS")))
    return table.default


def chain_of(table: ActiveTable, region: Region, key: PoolKey) -> Chain:
    """The tables a region's clients go through for one name and type, up to the one that answers (the
    builder's record where the region lists the name)."""
    tier = tier_of(table, region)
    if tier is not None:
        if key in tier.usable:
            return ((region, Tried.SERVED),)
        found = tier.chains.get(key)
        if found is not None:
            return found
    return _walk(table, region, key, tier, Tried.NO_TABLE if tier is None else Tried.UNLISTED)


def _walk(table: ActiveTable, region: Region, key: PoolKey, tier: Tier | None, here: Tried) -> Chain:
    """`here`, then the wider tables' way; the widest table that can fail open does, when none serves."""
    up = wider(region)
    rest = chain_of(table, up, key) if up is not None else ()
    answered = any(tried in (Tried.SERVED, Tried.FAIL_OPEN) for _, tried in rest)
    if not answered and tier is not None and key in tier.fail_open:
        here = Tried.FAIL_OPEN
    return ((region, here), *rest)


def record_chains(table: ActiveTable, shared: Callable[[Chain], Chain]) -> None:
    """Each tier's chains, for the names it lists and does not serve itself; wider tiers first, so that a
    country's way reads its continent's record."""
    tiers = [(DEFAULT_REGION, table.default), *((Region(Level.CONTINENT, c), t) for c, t in table.continents.items()),
             *((Region(Level.COUNTRY, c), t) for c, t in table.countries.items()),
             *((Region(Level.NETWORK, c), t) for c, t in table.networks.items()),
             *((Region(Level.ASN, f"AS{c}"), t) for c, t in table.asns.items())]
    for region, tier in tiers:
        chains = tier.chains
        assert isinstance(chains, dict)  # filled here, once, before anything reads the table
        for key in {*tier.fail_open, *tier.left_out}:
            if key not in tier.usable:
                chains[key] = shared(_walk(table, region, key, tier, Tried.UNUSABLE))
