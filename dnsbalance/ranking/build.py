"""Table generation, pure: (configuration, health view) -> a new immutable ActiveTable, with the builder's
reasons recorded beside it (every health key's judgement, each pool's left-out entries, the tables a region's
clients go through) for explain, plan, the status page and the metrics, which read them rather than working
the rules out again."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import MappingProxyType

from dnsbalance.configuration.model import (
    APEX,
    DRAINED,
    RELAY_LABEL,
    SRV_SERVICES,
    AdminState,
    Config,
    Mirror,
    Region,
    Relay,
    Table,
    archive_for,
    archives_of,
    fallback_archive,
    health_key,
    mirror_key,
)
from dnsbalance.configuration.model import (
    Entry as ConfigEntry,
)
from dnsbalance.configuration.web_services import WEB_SERVICES, mirror_target, web_owner, web_port, web_service
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
from dnsbalance.ranking.chains import record_chains
from dnsbalance.ranking.pool import Chain, Judgement, LeftOut, Why
from dnsbalance.health.requirements import arch_key, requirement_keys
from dnsbalance.health.served import host_for, probing_served, served_key, served_targets
from dnsbalance.health.view import HealthView, Status

ADDRESS_TYPES = (RType.A, RType.AAAA)
SRV_WEIGHT_MAX = 65535


def judge(config: Config, target: Mirror | Relay, health: HealthView, key: str,
          drained: frozenset[str] = frozenset()) -> Judgement:
    """An operator's drain (`dnsbalance drain`) wins, then their up/down in mirrors.yaml; otherwise the health
    view, where a never-judged key is pending (up when health checks are off or nothing probes the mirror)."""
    if target.name in drained:
        return Judgement.DRAINED
    if target.state is AdminState.UP:
        return Judgement.OPERATOR_UP
    if target.state is AdminState.DOWN:
        return Judgement.OPERATOR_DOWN
    found = health.status(key)
    if found is Status.PENDING:
        if not config.settings.health.enabled:
            return Judgement.HEALTH_OFF  # nothing will judge it: no verdict to wait for
        if isinstance(target, Mirror) and not target.probed():
            return Judgement.NOT_PROBED
    return _JUDGED[found]


_JUDGED = {Status.UP: Judgement.UP, Status.SYNCING: Judgement.SYNCING, Status.DOWN: Judgement.DOWN,
           Status.PENDING: Judgement.PENDING}


def judge_all(config: Config, health: HealthView, drained: frozenset[str] = frozenset()) -> dict[str, Judgement]:
    """Every health key the tables or the status page can ask about: each mirror (alone and per archive)
    and each relay service."""
    judged: dict[str, Judgement] = {}
    archives = archives_of(config.settings)
    for mirror in config.mirrors.values():
        for key in {mirror.name, *(mirror_key(mirror.name, archive) for archive in archives)}:
            judged[key] = judge(config, mirror, health, key, drained)
    for relay in config.relays.values():
        for service in relay.services():
            key = health_key(relay.name, service)
            judged[key] = judge(config, relay, health, key, drained)
    for served in served_targets(config):
        judged[served.key] = judge(config, config.mirrors[served.owner.split("/", 1)[0]], health, served.key,
                                   drained)
    for key, owner in requirement_keys(config).items():
        judged[key] = judge(config, config.mirrors[owner], health, key, drained)
    return judged


def target_key(config: Config, target: Mirror | Relay, owner: str) -> str:
    """The health key an entry of `owner` is judged by: the mirror for the name's archive, or the relay's
    service."""
    service = SRV_SERVICES.get(owner)
    if isinstance(target, Relay):
        return health_key(target.name, service or "")
    return mirror_key(target.name, archive_for(config.settings, owner))


def srv_weight(weight: int) -> int:
    """DNS Balance's 1..10000 scaled into SRV's 16 bits, never 0 (RFC 2782 gives 0 a special meaning)."""
    return max(1, weight * SRV_WEIGHT_MAX // 10000)


Judged = tuple[Candidate, Status]
LIVE = (Status.UP, Status.SYNCING)
# An entry of one name and type, in the table's order: drawable (candidate, its judgement, its health key),
# or drained (its record, already made)
Listed = tuple[Candidate, Judgement, str] | LeftOut
# A mirror's entry of a name in its A and AAAA listings together (apt's SRV sets): the entry, the mirror, its
# judgement and health key if either family can draw it, its left-out records
Merged = tuple[ConfigEntry, Mirror, tuple[Judgement, str] | None, tuple[LeftOut, ...]]


class Records:
    """The builder's shared record objects: one LeftOut per (target, why, key), one tuple per chain."""

    def __init__(self) -> None:
        self.left_out: dict[tuple[str, Why, str], LeftOut] = {}
        self.chains: dict[Chain, Chain] = {}

    def entry(self, target: str, why: Why, key: str) -> LeftOut:
        found = self.left_out.get((target, why, key))
        if found is None:
            found = self.left_out[(target, why, key)] = LeftOut(target, why, key)
        return found

    def chain(self, chain: Chain) -> Chain:
        return self.chains.setdefault(chain, chain)


class Build:
    """What one table generation works from: the configuration, every key's judgement, and the records."""

    def __init__(self, config: Config, health: HealthView, drained: frozenset[str] = frozenset()) -> None:
        self.config = config
        self.drained = drained  # mirrors and relays an operator drained: out of every answer, failing open too
        self.judged = judge_all(config, health, drained)
        self.records = Records()
        self.served = probing_served(config)
        # Each (table, name, type)'s entries, listed once: every pool is asked for twice (live somewhere, then
        # its tier) and apt's SRV sets are made of the A and AAAA listings.
        self.listings: dict[tuple[Region, str, RType], list[Listed]] = {}
        self.web_facts: dict[tuple[str, str], tuple[tuple[int | None, ...], tuple[str, ...]]] = {}
        self.web_merged: dict[tuple[Region, str], list[Merged]] = {}
        self.mirror_keys: dict[tuple[str, str], str] = {}

    def listed(self, table: Table, name: str, rtype: RType) -> list[Listed]:
        """Entries of one name that can answer the type (an address of its family, a port for the service):
        drained ones as their record, the others with their judgement. The caller does not change the list."""
        key = (table.region, name, rtype)
        found = self.listings.get(key)
        if found is None:
            found = self.listings[key] = self._listed(table, name, rtype)
        return found

    def _listed(self, table: Table, name: str, rtype: RType) -> list[Listed]:
        config = self.config
        found: list[Listed] = []
        service = SRV_SERVICES.get(name)
        web = web_service(name) if rtype is RType.SRV and service is None else None
        if web is not None:
            return self.listed_web(table, *web)
        for entry in table.names[name]:
            weight = DRAINED - entry.priority
            if rtype is RType.SRV:
                relay = config.relays.get(entry.target)
                if relay is None or service is None or not (port := relay.port(service)):
                    continue
                key = health_key(relay.name, service)
                if weight <= 0 or relay.name in self.drained:
                    found.append(self.records.entry(relay.name, Why.DRAINED if weight <= 0 else Why.OPERATOR_DRAIN,
                                                    key))
                    continue
                found.append((Candidate(relay.name, srv_weight(weight), relay.ipv4 + relay.ipv6, port, entry.tier),
                              self.judged[key], key))
                continue
            mirror = config.mirrors.get(entry.target)
            if mirror is not None:
                found += self.mirror_entry(mirror, name, rtype, weight)
        return found

    def mirror_entry(self, mirror: Mirror, name: str, rtype: RType, weight: int) -> list[Listed]:
        """One mirror's entry of a balanced name for A or AAAA: nothing without an address of the family."""
        addresses = mirror.ipv4 if rtype is RType.A else mirror.ipv6
        if not addresses:
            return []
        key = self.mirror_key(mirror, name)
        lacking = self.lacking(name, key)
        if weight <= 0:
            return [self.records.entry(mirror.name, Why.DRAINED, key)]
        if mirror.name in self.drained:
            return [self.records.entry(mirror.name, Why.OPERATOR_DRAIN, key)]
        if lacking:
            return [self.records.entry(mirror.name, Why.PARTIAL, lacking)]
        if self.served and mirror.probed() and self.judged[key].status in LIVE:  # served probes need a URL
            return self.as_served(mirror, name, key, weight, addresses)
        return [(Candidate(mirror.name, weight, addresses), self.judged[key], key)]

    def mirror_key(self, mirror: Mirror, name: str) -> str:
        """target_key for a mirror, once per (mirror, name): every table listing the pair asks again."""
        found = self.mirror_keys.get((mirror.name, name))
        if found is None:
            found = self.mirror_keys[(mirror.name, name)] = target_key(self.config, mirror, name)
        return found

    def web_url(self, mirror: Mirror, name: str) -> str | None:
        """The mirror's base URL for the archive `name` is served from."""
        archives = archives_of(self.config.settings)
        return mirror.url_for(archive_for(self.config.settings, name), fallback_archive(archives))

    def listed_web(self, table: Table, service: str, name: str) -> list[Listed]:
        """`_http._tcp.NAME` / `_https._tcp.NAME`: one entry per mirror NAME's A or AAAA answers draw from,
        judged as there (down, drained, partial, an address down: the same records), its weight scaled like a
        relay's, the port its URL says; live on either family's verdict, the target's served addresses."""
        index = list(WEB_SERVICES).index(service)
        found: list[Listed] = []
        for entry, mirror, judged, left in self.merged(table, name):
            ports, addresses = self.web_fact(mirror, name)
            port = ports[index]
            if port is None:
                continue
            if judged is not None:
                found.append((Candidate(mirror.name, srv_weight(entry.weight), addresses, port, entry.tier), *judged))
            found += left
        return found

    def merged(self, table: Table, name: str) -> list[Merged]:
        """NAME's A and AAAA listings in one, by mirror in the table's order: its judgement (the first live
        family's, else the first's; None when neither can be drawn) and its left-out records, each once."""
        cache_key = (table.region, name)
        found = self.web_merged.get(cache_key)
        if found is not None:
            return found
        by_mirror: dict[str, list[Listed]] = {}
        for rtype in ADDRESS_TYPES:
            for item in self.listed(table, name, rtype):
                owner = item.target.split("@", 1)[0] if isinstance(item, LeftOut) else item[0].name
                by_mirror.setdefault(owner, []).append(item)
        found = []
        for entry in table.names.get(name, ()):
            mirror = self.config.mirrors.get(entry.target)
            items = by_mirror.get(entry.target)
            if mirror is None or not items:
                continue
            judged: tuple[Judgement, str] | None = None
            left: list[LeftOut] = []
            for item in items:
                if isinstance(item, LeftOut):
                    if item not in left:
                        left.append(item)
                elif judged is None or (item[1].status in LIVE and judged[0].status not in LIVE):
                    judged = (item[1], item[2])
            found.append((entry, mirror, judged, tuple(left)))
        self.web_merged[cache_key] = found
        return found

    def web_fact(self, mirror: Mirror, name: str) -> tuple[tuple[int | None, ...], tuple[str, ...]]:
        """The mirror's port for each web service (WEB_SERVICES' order) and its target's addresses, for one
        name: the same in every table, worked out once."""
        key = (mirror.name, name)
        found = self.web_facts.get(key)
        if found is None:
            url = self.web_url(mirror, name)
            found = self.web_facts[key] = (tuple(web_port(url, service) for service in WEB_SERVICES),
                                           self.target_addresses(mirror, name))
        return found

    def split_addresses(self, mirror: Mirror, name: str, key: str, addresses: tuple[str, ...]
                        ) -> tuple[list[str], list[tuple[str, str]]]:
        """The addresses that serve `name` on their served probes' verdicts, and those that do not (with the
        key that judged them down)."""
        host = host_for(self.config, mirror, name)
        per_address = self.config.settings.health.addresses
        kept: list[str] = []
        dropped: list[tuple[str, str]] = []
        for address in addresses:
            checked = served_key(key, address if per_address else None, host)
            if self.judged.get(checked, Judgement.PENDING).status is Status.DOWN:
                dropped.append((address, checked))
            else:
                kept.append(address)
        return kept, dropped

    def target_addresses(self, mirror: Mirror, name: str) -> tuple[str, ...]:
        """What the mirror's SRV target for `name` answers: the addresses its A/AAAA entries are served at (all
        of them when none is, as a name failing open serves them)."""
        every = mirror.ipv4 + mirror.ipv6
        key = self.mirror_key(mirror, name)
        if not self.served or not mirror.probed() or self.judged[key].status not in LIVE:
            return every
        kept = [address for family in (mirror.ipv4, mirror.ipv6)
                for address in self.split_addresses(mirror, name, key, family)[0]]
        return tuple(kept) or every

    def web_targets(self) -> dict[str, tuple[tuple[RType, str], ...]]:
        """Every mirror's SRV target of every balanced name it is listed under, with its served addresses.
        They exist whatever the health (a resolver never caches a target's NXDOMAIN)."""
        targets: dict[str, tuple[tuple[RType, str], ...]] = {}
        for name, mirror in self.web_listings():
            target = mirror_target(mirror.name, name)
            if target not in targets:
                targets[target] = tuple((RType.AAAA if ":" in a else RType.A, a)
                                        for a in self.web_fact(mirror, name)[1])
        return targets

    def web_listings(self) -> Iterator[tuple[str, Mirror]]:
        """(balanced name, mirror) for every mirror with an address some table lists under a name."""
        for table in self.config.tables():
            for name, entries in table.names.items():
                if name in SRV_SERVICES:
                    continue
                for entry in entries:
                    mirror = self.config.mirrors.get(entry.target)
                    if mirror is not None and mirror.ipv4 + mirror.ipv6:
                        yield name, mirror

    def web_owners(self) -> set[str]:
        """The SRV owners that exist: `_http._tcp.NAME` for every balanced name, `_https._tcp.NAME` where a
        mirror listed under it has an https URL."""
        return {web_owner(service, name) for name, mirror in self.web_listings()
                for service, port in zip(WEB_SERVICES, self.web_fact(mirror, name)[0], strict=True)
                if port is not None}

    def lacking(self, name: str, key: str) -> str:
        """The health key of the first architecture `name` requires that the mirror judged by `key` is known
        not to carry; "" when it carries them all (or nothing is required, or not known yet). A partial mirror is
        never served for the name, not even failing open: its clients would get 404s for what they came for."""
        for architecture in self.config.settings.require.get(name, ()):
            checked = arch_key(key, architecture)
            if self.judged.get(checked, Judgement.PENDING).status is Status.DOWN:
                return checked
        return ""

    def as_served(self, mirror: Mirror, name: str, key: str, weight: int, addresses: tuple[str, ...]
                  ) -> list[Listed]:
        """A live mirror's entry for `name`, as its served probes judged it (health/served.py): only the addresses
        that serve the name's Host; with none left, the entry is down on the first one's verdict (its reason is
        in the health state under that key); each address left out is recorded as `mirror@address`."""
        kept, dropped = self.split_addresses(mirror, name, key, addresses)
        if not kept:
            return [(Candidate(mirror.name, weight, addresses), self.judged[dropped[0][1]], dropped[0][1])]
        return [(Candidate(mirror.name, weight, tuple(kept)), self.judged[key], key),
                *(self.records.entry(f"{mirror.name}@{address}", Why.ADDRESS_DOWN, checked)
                  for address, checked in dropped)]


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


def _types(name: str) -> tuple[RType, ...]:
    return (RType.SRV,) if name in SRV_SERVICES else ADDRESS_TYPES


def _keys(table: Table) -> Iterator[PoolKey]:
    """The (owner, type) pairs a table's names make pools for."""
    for name in table.names:
        for rtype in _types(name):
            yield name, rtype


def _web_keys(table: Table) -> Iterator[PoolKey]:
    """A balanced name's web SRV owners (a pool only where some mirror has a port for the service)."""
    for name in table.names:
        if name not in SRV_SERVICES:
            for service in WEB_SERVICES:
                yield web_owner(service, name), RType.SRV


def _live_somewhere(build: Build) -> frozenset[PoolKey]:
    """(name, type) pairs some table can serve from a judged, live entry: for the others, pending entries
    are all there is, and they are served rather than failing open."""
    found: set[PoolKey] = set()
    for table in build.config.tables():
        for name, rtype in (*_keys(table), *_web_keys(table)):
            if (name, rtype) not in found and any(
                    not isinstance(item, LeftOut) and item[1].status in LIVE
                    for item in build.listed(table, name, rtype)):
                found.add((name, rtype))
    return frozenset(found)


# Why an entry was not drawn from, by its status as the draw saw it (the operator's down told apart)
_WHY = {Status.DOWN: Why.DOWN, Status.PENDING: Why.PENDING, Status.SYNCING: Why.SYNCING}


def _tier(build: Build, table: Table, live_somewhere: frozenset[PoolKey]) -> Tier:
    return replace(_pools(build, table, _keys(table), live_somewhere),
                   web=_pools(build, table, _web_keys(table), live_somewhere))


def _pools(build: Build, table: Table, keys: Iterator[PoolKey], live_somewhere: frozenset[PoolKey]) -> Tier:
    usable_pools: dict[PoolKey, Pool] = {}
    fail_open: dict[PoolKey, Pool] = {}
    left_out: dict[PoolKey, tuple[LeftOut, ...]] = {}
    for name, rtype in keys:
        listed = build.listed(table, name, rtype)
        promote = (name, rtype) not in live_somewhere  # nothing judged live anywhere: pending entries serve
        judged = [(item[0], Status.UP if promote and item[1] is Judgement.PENDING else item[1].status)
                  for item in listed if not isinstance(item, LeftOut)]
        found = avoid_syncing(judged)
        if found:
            usable_pools[(name, rtype)] = Pool(table.region, found)
        elif judged:
            fail_open[(name, rtype)] = Pool(table.region, tuple(c for c, _ in judged), fail_open=True)
        if len(found) < len(listed):
            left_out[(name, rtype)] = _left_out(build.records, listed, judged, {c.name for c in found})
    return Tier(MappingProxyType(usable_pools), MappingProxyType(fail_open), MappingProxyType(left_out))


def _left_out(records: Records, listed: list[Listed], judged: list[Judged], kept: set[str]) -> tuple[LeftOut, ...]:
    """The entries of `listed` a pool does not draw from, in the table's order, each with why."""
    found = []
    statuses = iter(status for _, status in judged)
    for item in listed:
        if isinstance(item, LeftOut):
            found.append(item)
            continue
        status = next(statuses)
        candidate, judgement, key = item
        if candidate.name not in kept:
            why = Why.OPERATOR_DOWN if judgement is Judgement.OPERATOR_DOWN else _WHY[status]
            found.append(records.entry(candidate.name, why, key))
    return tuple(found)


def zone_data(config: Config, serial: int) -> ZoneData:
    s = config.settings
    glue: dict[str, list[tuple[RType, str]]] = {}
    for ns in s.nameservers:
        if ns.name == s.zone or ns.name.endswith("." + s.zone):
            relative = APEX if ns.name == s.zone else ns.name[: -len(s.zone) - 1]
            glue[relative] = [(RType.AAAA if ":" in a else RType.A, a) for a in ns.addresses]
    # relay targets by lower-case name, as every lookup and the NSEC chain have them (a relay may be `RelayX`)
    targets = {f"{relay.name.lower()}.{RELAY_LABEL}": tuple((RType.AAAA if ":" in a else RType.A, a)
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


def existing_names(config: Config, zone: ZoneData, more: set[str] | frozenset[str] = frozenset()) -> frozenset[str]:
    """Owner names of every table and name server (and `more`: the web SRV owners), with their empty
    non-terminals (RFC 8020)."""
    names = {APEX, *zone.glue, *zone.targets, *more}
    for table in config.tables():
        names.update(table.names)
    parents = {name.split(".", i)[-1] for name in names for i in range(1, name.count(".") + 1)}
    return frozenset(names | parents)


def build_table(config: Config, health: HealthView, generation: int, serial: int, seed: int = 0,
                drained: frozenset[str] = frozenset()) -> ActiveTable:
    """`drained`: the mirrors and relays operators drained (dnsbalance/drains.py), left out of every pool."""
    build = Build(config, health, drained)
    zone = zone_data(config, serial)
    zone = replace(zone, targets=MappingProxyType({**zone.targets, **build.web_targets()}))
    live = _live_somewhere(build)
    countries = {code: _tier(build, t, live) for code, t in config.countries.items()}
    continents = {code: _tier(build, t, live) for code, t in config.continents.items()}
    networks = {code: _tier(build, t, live) for code, t in config.networks.items()}
    asns = {code: _tier(build, t, live) for code, t in config.asns.items()}
    regional = {key for tiers in (countries, continents, networks, asns) for region in tiers.values()
                for tier in (region, region.web or region) for key in (*tier.usable, *tier.fail_open)}
    table = ActiveTable(
        generation=generation,
        zone=zone,
        names=existing_names(config, zone, build.web_owners()),
        countries=MappingProxyType(countries),
        continents=MappingProxyType(continents),
        default=_tier(build, config.default, live),
        seed=seed,
        networks=MappingProxyType(networks),
        asns=MappingProxyType(asns),
        regional=frozenset(regional),
        judged=MappingProxyType(build.judged),
    )
    record_chains(table, build.records.chain)
    return table


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
