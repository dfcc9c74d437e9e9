"""Table generation, pure: (configuration, health view) -> a new immutable ActiveTable."""
from __future__ import annotations

from types import MappingProxyType

from dnsbalance.configuration.model import (
    APEX,
    DRAINED,
    RELAY_LABEL,
    SRV_SERVICES,
    AdminState,
    Config,
    Mirror,
    Relay,
    Table,
    health_key,
)
from dnsbalance.protocol.codes import RType
from dnsbalance.protocol.wire import Soa
from dnsbalance.ranking.active import (
    ActiveTable,
    Candidate,
    Pool,
    PoolKey,
    Tier,
    ZoneData,
)
from health.view import HealthView

ADDRESS_TYPES = (RType.A, RType.AAAA)
SRV_WEIGHT_MAX = 65535


def usable(target: Mirror | Relay, health: HealthView, service: str | None = None) -> bool:
    """An operator's up/down wins; otherwise the health view (per service for relays)."""
    if target.state is AdminState.UP:
        return True
    if target.state is AdminState.DOWN:
        return False
    return health.is_usable(target.name if service is None else health_key(target.name, service))


def srv_weight(weight: int) -> int:
    """DNS Balance's 1..10000 scaled into SRV's 16 bits, never 0 (RFC 2782 gives 0 a special meaning)."""
    return max(1, weight * SRV_WEIGHT_MAX // 10000)


def _candidates(config: Config, table: Table, name: str, rtype: RType,
                healthy: dict[str, bool] | None) -> tuple[Candidate, ...]:
    """Entries of one name with weight > 0 that can answer the type; usable ones unless `healthy` is None."""
    found = []
    service = SRV_SERVICES.get(name)
    for entry in table.names[name]:
        weight = DRAINED - entry.priority
        if weight <= 0:
            continue
        if rtype is RType.SRV:
            relay = config.relays.get(entry.target)
            if relay is None or service is None or not (port := relay.port(service)):
                continue
            if healthy is not None and not healthy[health_key(relay.name, service)]:
                continue
            found.append(Candidate(relay.name, srv_weight(weight), relay.ipv4 + relay.ipv6, port, entry.tier))
            continue
        mirror = config.mirrors.get(entry.target)
        if mirror is None or (healthy is not None and not healthy[mirror.name]):
            continue
        addresses = mirror.ipv4 if rtype is RType.A else mirror.ipv6
        if addresses:
            found.append(Candidate(mirror.name, weight, addresses))
    return tuple(found)


def _usable_now(config: Config, health: HealthView) -> dict[str, bool]:
    """Every mirror and relay service judged once, rather than once per table entry."""
    verdicts = {name: usable(mirror, health) for name, mirror in config.mirrors.items()}
    for relay in config.relays.values():
        for service in SRV_SERVICES.values():
            verdicts[health_key(relay.name, service)] = usable(relay, health, service)
    return verdicts


def _tier(config: Config, table: Table, healthy: dict[str, bool]) -> Tier:
    usable_pools: dict[PoolKey, Pool] = {}
    fail_open: dict[PoolKey, Pool] = {}
    for name in table.names:
        for rtype in (RType.SRV,) if name in SRV_SERVICES else ADDRESS_TYPES:
            found = _candidates(config, table, name, rtype, healthy)
            if found:
                usable_pools[(name, rtype)] = Pool(table.region, found)
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
    targets = {f"{relay.name}.{RELAY_LABEL}": tuple((RType.AAAA if ":" in a else RType.A, a)
                                                    for a in relay.ipv4 + relay.ipv6)
               for relay in config.relays.values()}
    mname = s.nameservers[0].name if s.nameservers else s.zone
    return ZoneData(
        zone=s.zone,
        ttl=s.ttl,
        soa_ttl=s.soa.ttl,
        negative_ttl=min(s.soa.ttl, s.soa.minimum),  # RFC 2308 section 5
        soa=Soa(mname, s.soa.rname, serial, s.soa.refresh, s.soa.retry, s.soa.expire, s.soa.minimum),
        nameservers=tuple(ns.name for ns in s.nameservers),
        glue=MappingProxyType({k: tuple(v) for k, v in glue.items()}),
        targets=MappingProxyType(targets),
        answers=s.answers,
        min_answers=s.min_answers,
        nsid=s.nsid,
    )


def existing_names(config: Config, zone: ZoneData) -> frozenset[str]:
    """Owner names of every table and name server, with their empty non-terminals (RFC 8020)."""
    names = {APEX, *zone.glue, *zone.targets}
    for table in config.tables():
        names.update(table.names)
    for name in list(names):
        labels = name.split(".")
        for i in range(1, len(labels)):
            names.add(".".join(labels[i:]))
    return frozenset(names)


def build_table(config: Config, health: HealthView, generation: int, serial: int, seed: int = 0) -> ActiveTable:
    zone = zone_data(config, serial)
    healthy = _usable_now(config, health)
    countries = {code: _tier(config, t, healthy) for code, t in config.countries.items()}
    continents = {code: _tier(config, t, healthy) for code, t in config.continents.items()}
    networks = {code: _tier(config, t, healthy) for code, t in config.networks.items()}
    asns = {code: _tier(config, t, healthy) for code, t in config.asns.items()}
    regional = {key for tiers in (countries, continents, networks, asns) for tier in tiers.values()
                for key in (*tier.usable, *tier.fail_open)}
    return ActiveTable(
        generation=generation,
        zone=zone,
        names=existing_names(config, zone),
        countries=MappingProxyType(countries),
        continents=MappingProxyType(continents),
        default=_tier(config, config.default, healthy),
        seed=seed,
        networks=MappingProxyType(networks),
        asns=MappingProxyType(asns),
        regional=frozenset(regional),
    )


def fail_open_names(table: ActiveTable) -> list[str]:
    """'deb AAAA' for every name the default table can serve only by failing open."""
    return sorted(f"{name} {rtype.name}" for name, rtype in table.default.fail_open)
