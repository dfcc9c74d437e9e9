"""`dnsbalance explain`: which table answers a client for a name, and why, as lines of text. The why is the
table builder's record (the entries each pool left out and their reasons, every health key's judgement);
the answer is the one a query gets from the same table."""
from __future__ import annotations

import time

from dnsbalance.configuration.model import APEX, SRV_SERVICES, Config, Entry, Table, archive_for
from dnsbalance.configuration.names import normalise_name, relative_to
from dnsbalance.configuration.web_services import apt_records, mirror_target, web_service
from dnsbalance.geo.locate import IPAddress, Location, unmap
from dnsbalance.ops.shares import design_lines
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import ActiveTable, Pool, Tier
from dnsbalance.ranking.build import target_key
from dnsbalance.ranking.chains import tier_of
from dnsbalance.ranking.pool import Judgement, LeftOut, Why
from dnsbalance.drains import NONE, Drains
from dnsbalance.health.state import HealthState
from dnsbalance.health.view import Status


def _chain(config: Config, location: Location, address: IPAddress | None) -> list[tuple[str, Table | None]]:
    """The client's tables in the order a query tries them (ActiveTable.pool_for), each labelled with what
    put the client there; what each did is the builder's record, read by the caller."""
    chain: list[tuple[str, Table | None]] = []
    for code in location.networks:
        table = config.networks.get(code)
        inside = [n for n in (table.networks if table else ()) if address is not None
                  and n.version == address.version and address in n]
        why = f" (the client is inside {max(inside, key=lambda n: n.prefixlen)})" if inside else ""
        chain.append((f"network {code}{why}", table))
    if config.asns:
        asn = location.asn
        chain.append((f"AS{asn} (from the ASN database)" if asn is not None else "AS ? (not in the ASN database)",
                      config.asns.get(asn) if asn is not None else None))
    return chain + [
        (f"country {location.country or '?'}", config.countries.get(location.country or "")),
        (f"continent {location.continent or '?'}", config.continents.get(location.continent or "")),
        ("default", config.default),
    ]


def owner_name(name: str, zone: str, known: frozenset[str]) -> str | None:
    """The owner name relative to the zone, or None for a name outside it. A name ending in a dot is
    absolute; without one, a name the zone defines is taken as relative ('deb', '_turn._udp'), and so is an
    unknown single label, but an unknown dotted name ('www.example.com') as the client would ask it."""
    text = normalise_name(name)
    if text in ("", "@"):
        return APEX
    if (relative := relative_to(text, zone)) is not None:
        return relative
    if name.endswith(".") or ("." in text and text not in known):
        return None
    return text


def explain(config: Config, table: ActiveTable, location: Location, name: str,
            address: IPAddress | None = None, state: HealthState | None = None, drains: Drains = NONE) -> list[str]:
    """`address`: the client's, to name the network prefix that chose its network table; `state`: the
    saved health, whose reasons and times explain the entries that are down; `drains`: the operators' drains,
    whose words explain the entries drained."""
    zone = config.settings.zone
    relative = owner_name(name, zone, table.names)
    if relative is None:  # as the server answers it: authoritative for its zone only, never a resolver
        shown = name.rstrip(".").lower()
        return [f"name: {shown}. (outside zone {zone})",
                (f"answer: REFUSED: this server answers only for {zone} and the names below it; it is no "
                 "resolver")]
    fqdn = zone if relative == APEX else f"{relative}.{zone}"
    lines = [f"name: {fqdn} (owner '{relative}' in zone {zone})",
             f"client: {location.describe()}",
             "tables tried, in order (network, AS, country, continent, default):"]
    if relative not in table.names:
        return lines + ["answer: NXDOMAIN: no table defines this name"]
    web = web_service(relative)
    if web is not None:
        return lines[:2] + _web_lines(table, location, relative, *web)

    for label, source in _chain(config, location, unmap(address) if address is not None else None):
        if source is None:
            lines.append(f"  {label}: no table")
        elif relative not in source.names:
            lines.append(f"  {label}: table {source.source} does not list '{relative}'")
        else:
            tier = tier_of(table, source.region)
            why = _not_usable(config, table, tier, relative) if tier is not None else {}
            entries = source.names[relative]
            lines.append(f"  {label}: table {source.source} lists '{relative}', "
                         f"{sum(e.target not in why for e in entries)} usable of {len(entries)}")
            lines += [f"    {entry.target}: {_why_not(entry, why[entry.target], state, drains)}"
                      for entry in entries if entry.target in why]

    service = SRV_SERVICES.get(relative)
    if not service:
        archive = archive_for(config.settings, relative)
        lines.append(f"archive: {archive.name if not archive.implicit else 'the one archive of health:'} "
                     f"(stamp {archive.stamp})")
    for rtype in (RType.SRV,) if service else (RType.A, RType.AAAA):
        pool = table.pool_for(location, relative, rtype)
        lines.append("")
        if pool is None:
            lines.append(f"{rtype.name}: no answer (NODATA): no table has a usable entry for this type")
            continue
        how = "FAIL OPEN (nothing usable; health ignored)" if pool.fail_open else "usable entries"
        lines.append(f"{rtype.name}: answered from the {pool.region} table, {how}")
        lines += _entries(config, table, pool, service, relative)
        if not service:
            lines += design_lines(pool, table.variants(pool, rtype).design)
    return lines


def _web_lines(table: ActiveTable, location: Location, owner: str, service: str, name: str) -> list[str]:
    """apt's SRV set: NAME's mirrors as its A/AAAA answers take them (`explain NAME` says why each is in or out)."""
    shown = name if name != APEX else "@"
    lines = [(f"apt's {service} SRV set of '{shown}': the mirrors its A/AAAA answers draw from (explain '{shown}' "
              "for the tables and health)")]
    pool = table.web_pool_for(location, owner)
    if pool is None:
        return [*lines, "SRV: no answer (NODATA): no mirror of the name serves this scheme now"]
    how = "FAIL OPEN (nothing usable; health ignored)" if pool.fail_open else "usable entries"
    lines.append(f"SRV: answered from the {pool.region} table, {how}")
    lines.append(f"  {'mirror':<16} {'weight':>6}  port   target and its addresses")
    for candidate in pool.candidates:
        target = mirror_target(candidate.name, name)
        lines.append(f"  {candidate.name:<16} {candidate.weight:>6}  {candidate.port:<5}  {target}: "
                     f"{' '.join(candidate.addresses)}")
    return lines + _apt_cut(table.zone.zone, owner, [mirror_target(c.name, name) for c in pool.candidates])


def _apt_cut(zone: str, owner: str, targets: list[str]) -> list[str]:
    """A line when answers carry only part of the set: what fits apt's 512-byte buffer, the first records of
    each answer's weighted order (how many depends on which targets lead, when their names differ in length)."""
    def labels(name: str) -> tuple[bytes, ...]:
        return tuple(label.encode() for label in f"{name}.{zone}".split("."))

    shortest_first = sorted((labels(t) for t in targets), key=lambda t: sum(map(len, t)))
    most = apt_records(labels(owner), shortest_first)
    least = apt_records(labels(owner), shortest_first[::-1])
    if most >= len(targets):
        return []
    carried = str(most) if least == most else f"{least} to {most}"
    return [f"  each answer carries {carried} of these {len(targets)}: the first of its weighted order, as many as "
            "fit the 512 bytes apt reads (the first is drawn from all of them)"]


def _not_usable(config: Config, table: ActiveTable, tier: Tier, owner: str) -> dict[str, LeftOut]:
    """The entries of `owner` a table cannot answer with now, by target, as the builder recorded them: left
    out of its pools (drained, down, pending; one avoided while it syncs still counts as usable), or served
    only because nothing judged is usable anywhere (pending)."""
    found: dict[str, LeftOut] = {}
    pooled: set[str] = set()
    for rtype in (RType.SRV,) if SRV_SERVICES.get(owner) else (RType.A, RType.AAAA):
        for left in tier.left_out.get((owner, rtype), ()):
            if left.why is not Why.SYNCING:
                found.setdefault(left.target, left)
        pool = tier.usable.get((owner, rtype))
        if pool is not None:
            pooled.update(c.name for c in pool.candidates)
    for name in pooled - found.keys():
        target = config.relays[name] if SRV_SERVICES.get(owner) else config.mirrors[name]
        key = target_key(config, target, owner)
        if table.judged.get(key) is Judgement.PENDING:
            found[name] = LeftOut(name, Why.PENDING, key)
    return found


def _why_not(entry: Entry, left: LeftOut, state: HealthState | None, drains: Drains = NONE) -> str:
    """Why an entry of a table is not answered, in words: the builder's reason, with the health checks'
    own reason and since when for one that is down."""
    if left.why is Why.DRAINED:
        return f"drained (priority {entry.priority})"
    if left.why is Why.OPERATOR_DOWN:
        return "DOWN by operator (state: down in mirrors.yaml)"
    if left.why is Why.OPERATOR_DRAIN:
        drain = drains.get(left.target)
        return f"DRAINED ({drain.describe() if drain else 'dnsbalance drain'}; `dnsbalance undrain` puts it back)"
    if left.why is Why.PENDING:
        return f"pending: {left.key} not judged yet (answered only while no judged entry is usable)"
    judged = state.mirrors.get(left.key) if state is not None else None
    if left.why is Why.PARTIAL:
        return f"partial ({left.key}): {judged.reason if judged else 'lacks an architecture the name requires'}"
    if judged is None:
        return f"{Status.DOWN.value} ({left.key})"
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(judged.since)) if judged.since else "?"
    return f"DOWN since {since} ({left.key}): {judged.reason or 'no reason recorded'}"


def _entries(config: Config, table: ActiveTable, pool: Pool, service: str | None, owner: str) -> list[str]:
    total = sum(pool.weights)
    # "share": of the usable entries' weight (health-adjusted), the share of first addresses at clients
    rows = [f"  {'relay' if service else 'mirror':<16} {'weight':>6} {'share':>7}  health  "
            + ("tier  port  addresses" if service else "addresses")]
    for candidate in pool.candidates:
        target = config.relays[candidate.name] if service else config.mirrors[candidate.name]
        status = table.judged[target_key(config, target, owner)].status
        state = status.value if status is not Status.DOWN else "DOWN"
        if target.state.value != "auto":
            state += f" ({target.state.value} by operator)"
        share = 100.0 * candidate.weight / total if total else 0.0
        extra = f"{candidate.tier:<4}  {candidate.port:<5} " if service else ""
        rows.append(f"  {candidate.name:<16} {candidate.weight:>6} {share:>6.1f}%  {state:<6}  {extra}"
                    f"{' '.join(candidate.addresses)}")
    return rows
