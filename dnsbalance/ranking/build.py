"""Table generation, pure: (configuration, health view) -> a new immutable ActiveTable."""
from __future__ import annotations

from types import MappingProxyType

from dnsbalance.configuration.model import APEX, AdminState, Config, Mirror, Table
from dnsbalance.ranking.active import ActiveTable, Candidate, Pool, PoolKey, RType, Tier, ZoneData
from health.view import HealthView

ADDRESS_TYPES = (RType.A, RType.AAAA)


def usable(mirror: Mirror, health: HealthView) -> bool:
    if mirror.state is AdminState.UP:
        return True
    if mirror.state is AdminState.DOWN:
        return False
    return health.is_usable(mirror.name)


def _candidates(config: Config, table: Table, name: str, rtype: RType,
                health: HealthView | None) -> tuple[Candidate, ...]:
    """Entries of one name with weight > 0 and an address of the type; healthy ones unless health is None."""
    found = []
    for entry in table.names[name]:
        mirror = config.mirrors.get(entry.target)
        if mirror is None or entry.weight <= 0:
            continue
        if health is not None and not usable(mirror, health):
            continue
        addresses = mirror.ipv4 if rtype is RType.A else mirror.ipv6
        if addresses:
            found.append(Candidate(mirror.name, entry.weight, addresses))
    return tuple(found)


def _tier(config: Config, table: Table, health: HealthView) -> Tier:
    usable_pools: dict[PoolKey, Pool] = {}
    fail_open: dict[PoolKey, Pool] = {}
    for name in table.names:
        for rtype in ADDRESS_TYPES:
            healthy = _candidates(config, table, name, rtype, health)
            if healthy:
                usable_pools[(name, rtype)] = Pool(table.region, healthy)
                continue
            configured = _candidates(config, table, name, rtype, None)
            if configured:
                fail_open[(name, rtype)] = Pool(table.region, configured, fail_open=True)
    return Tier(MappingProxyType(usable_pools), MappingProxyType(fail_open))


def zone_data(config: Config, serial: int) -> ZoneData:
    s = config.settings
    glue: dict[str, list[tuple[RType, str]]] = {}
    for ns in s.nameservers:
        if ns.name == s.zone or ns.name.endswith("." + s.zone):
            relative = APEX if ns.name == s.zone else ns.name[: -len(s.zone) - 1]
            glue[relative] = [(RType.AAAA if ":" in a else RType.A, a) for a in ns.addresses]
    mname = s.nameservers[0].name if s.nameservers else s.zone
    return ZoneData(
        zone=s.zone,
        ttl=s.ttl,
        soa_ttl=s.soa.ttl,
        negative_ttl=min(s.soa.ttl, s.soa.minimum),  # RFC 2308 section 5
        soa=(mname, s.soa.rname, serial, s.soa.refresh, s.soa.retry, s.soa.expire, s.soa.minimum),
        nameservers=tuple(ns.name for ns in s.nameservers),
        glue=MappingProxyType({k: tuple(v) for k, v in glue.items()}),
        answers=s.answers,
    )


def existing_names(config: Config, zone: ZoneData) -> frozenset[str]:
    """Owner names of every table and name server, with their empty non-terminals (RFC 8020)."""
    names = {APEX, *zone.glue}
    for table in config.tables():
        names.update(table.names)
    for name in list(names):
        labels = name.split(".")
        for i in range(1, len(labels)):
            names.add(".".join(labels[i:]))
    return frozenset(names)


def build_table(config: Config, health: HealthView, generation: int, serial: int) -> ActiveTable:
    zone = zone_data(config, serial)
    return ActiveTable(
        generation=generation,
        zone=zone,
        names=existing_names(config, zone),
        countries=MappingProxyType({code: _tier(config, t, health) for code, t in config.countries.items()}),
        continents=MappingProxyType({code: _tier(config, t, health) for code, t in config.continents.items()}),
        default=_tier(config, config.default, health),
    )


def fail_open_names(table: ActiveTable) -> list[str]:
    """'deb AAAA' for every name the default table can serve only by failing open."""
    return sorted(f"{name} {rtype.name}" for name, rtype in table.default.fail_open)
