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
    archive_for,
    health_key,
    mirror_key,
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
from health.view import HealthView, Status

ADDRESS_TYPES = (RType.A, RType.AAAA)
SRV_WEIGHT_MAX = 65535


def status_of(config: Config, target: Mirror | Relay, health: HealthView, key: str) -> Status:
    """An operator's up/down wins; otherwise the health view, where a never-judged key is pending (up when
    health checks are off or nothing probes the mirror)."""
    if target.state is AdminState.UP:
        return Status.UP
    if target.state is AdminState.DOWN:
        return Status.DOWN
    found = health.status(key)
    if found is Status.PENDING and (not config.settings.health.enabled
                                    or (isinstance(target, Mirror) and not target.probed())):
        return Status.UP  # nothing will judge it: no verdict to wait for
    return found


def target_key(config: Config, target: Mirror | Relay, owner: str) -> str:
    """The health key an entry of `owner` is judged by: the mirror for the name's archive, or the relay's
    service."""
    service = SRV_SERVICES.get(owner)
    if isinstance(target, Relay):
        return health_key(target.name, service or "")
    return mirror_key(target.name, archive_for(config.settings, owner))


def usable(target: Mirror | Relay, health: HealthView, service: str | None = None) -> bool:
    """An operator's up/down wins; otherwise the health view (per service for relays; pending counts)."""
    if target.state is AdminState.UP:
        return True
    if target.state is AdminState.DOWN:
        return False
    return health.is_usable(target.name if service is None else health_key(target.name, service))


def srv_weight(weight: int) -> int:
    """DNS Balance's 1..10000 scaled into SRV's 16 bits, never 0 (RFC 2782 gives 0 a special meaning)."""
    return max(1, weight * SRV_WEIGHT_MAX // 10000)


Judged = tuple[Candidate, Status]
LIVE = (Status.UP, Status.SYNCING)


def _candidates(config: Config, table: Table, name: str, rtype: RType, health: HealthView) -> list[Judged]:
    """Entries of one name with weight > 0 that can answer the type, each with its health status."""
    found: list[Judged] = []
    service = SRV_SERVICES.get(name)
    for entry in table.names[name]:
        weight = DRAINED - entry.priority
        if weight <= 0:
            continue
        if rtype is RType.SRV:
            relay = config.relays.get(entry.target)
            if relay is None or service is None or not (port := relay.port(service)):
                continue
            status = status_of(config, relay, health, health_key(relay.name, service))
            found.append((Candidate(relay.name, srv_weight(weight), relay.ipv4 + relay.ipv6, port, entry.tier),
                          status))
            continue
        mirror = config.mirrors.get(entry.target)
        if mirror is None:
            continue
        addresses = mirror.ipv4 if rtype is RType.A else mirror.ipv6
        if addresses:
            status = status_of(config, mirror, health, target_key(config, mirror, name))
            found.append((Candidate(mirror.name, weight, addresses), status))
    return found


def avoid_syncing(judged: list[Judged]) -> tuple[Candidate, ...]:
    """The live candidates, less those mid-sync as long as the rest carry at least half the live weight:
    nobody's share more than doubles because its peers sync, and a region never empties because of it.
    The heaviest syncing mirrors are set aside first (they would draw the most traffic to a changing tree)."""
    live = [c for c, s in judged if s in LIVE]
    if not any(s is Status.UP for _, s in judged):
        return tuple(live)  # all mid-sync: moving traffic among them gains nothing
    total = sum(c.weight for c in live)
    left, avoided = total, set()
    for candidate in sorted((c for c, s in judged if s is Status.SYNCING), key=lambda c: (-c.weight, c.name)):
        if left - candidate.weight > 0 and 2 * (left - candidate.weight) >= total:
            left -= candidate.weight
            avoided.add(candidate.name)
    return tuple(c for c in live if c.name not in avoided)


def _live_somewhere(config: Config, health: HealthView) -> frozenset[PoolKey]:
    """(name, type) pairs some table can serve from a judged, live entry: for the others, pending entries
    are all there is, and they are served rather than failing open."""
    found: set[PoolKey] = set()
    for table in config.tables():
        for name in table.names:
            for rtype in (RType.SRV,) if name in SRV_SERVICES else ADDRESS_TYPES:
                if (name, rtype) not in found and any(s in LIVE for _, s in _candidates(config, table, name, rtype,
                                                                                        health)):
                    found.add((name, rtype))
    return frozenset(found)


def _tier(config: Config, table: Table, health: HealthView, live_somewhere: frozenset[PoolKey]) -> Tier:
    usable_pools: dict[PoolKey, Pool] = {}
    fail_open: dict[PoolKey, Pool] = {}
    for name in table.names:
        for rtype in (RType.SRV,) if name in SRV_SERVICES else ADDRESS_TYPES:
            judged = _candidates(config, table, name, rtype, health)
            if (name, rtype) not in live_somewhere:  # nothing judged live anywhere: pending entries serve
                judged = [(c, Status.UP if s is Status.PENDING else s) for c, s in judged]
            found = avoid_syncing(judged)
            if found:
                usable_pools[(name, rtype)] = Pool(table.region, found)
                continue
            if judged:
                fail_open[(name, rtype)] = Pool(table.region, tuple(c for c, _ in judged), fail_open=True)
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
    live = _live_somewhere(config, health)
    countries = {code: _tier(config, t, health, live) for code, t in config.countries.items()}
    continents = {code: _tier(config, t, health, live) for code, t in config.continents.items()}
    networks = {code: _tier(config, t, health, live) for code, t in config.networks.items()}
    asns = {code: _tier(config, t, health, live) for code, t in config.asns.items()}
    regional = {key for tiers in (countries, continents, networks, asns) for tier in tiers.values()
                for key in (*tier.usable, *tier.fail_open)}
    return ActiveTable(
        generation=generation,
        zone=zone,
        names=existing_names(config, zone),
        countries=MappingProxyType(countries),
        continents=MappingProxyType(continents),
        default=_tier(config, config.default, health, live),
        seed=seed,
        networks=MappingProxyType(networks),
        asns=MappingProxyType(asns),
        regional=frozenset(regional),
    )


def fail_open_names(table: ActiveTable) -> list[str]:
    """'deb AAAA' for every name the default table can serve only by failing open."""
    return sorted(f"{name} {rtype.name}" for name, rtype in table.default.fail_open)


def fail_open_report(table: ActiveTable) -> list[tuple[str, list[str]]]:
    """('deb AAAA', regions with usable entries for it) for every name some table can serve only by failing
    open, when the default table is one of them or no table has a usable entry (an empty list: truly failing
    open). A country failing open under a continent that serves is the ordinary fallback and not listed."""
    tiers = table.labelled_tiers()
    keys = {key for _, tier in tiers for key in tier.fail_open}
    report = []
    for name, rtype in sorted(keys, key=lambda k: (k[0], k[1].name)):
        regions = [label for label, tier in tiers if (name, rtype) in tier.usable]
        if not regions or (name, rtype) in table.default.fail_open:
            report.append((f"{name} {rtype.name}", regions))
    return report
