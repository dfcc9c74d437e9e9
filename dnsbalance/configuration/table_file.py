"""Read one table file (default.yaml, continent/EU.yaml, country/JP.yaml, network/NAME.yaml, asn/AS2500.yaml):
owner names -> `target: priority`; a network table adds its `networks:` list."""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from dnsbalance.configuration.checker import Checker, brief
from dnsbalance.configuration.mirrors_file import Fleet
from dnsbalance.configuration.model import (
    APEX,
    DRAINED,
    RELAY_LABEL,
    SRV_NAMES,
    SRV_SERVICES,
    Entry,
    Level,
    Region,
    Relay,
    Settings,
    Table,
    field_defaults,
)
from dnsbalance.configuration.names import is_dns_name, normalise_name
from dnsbalance.configuration.suggest import did_you_mean
from dnsbalance.configuration.network_file import read_networks
from dnsbalance.configuration.web_services import web_reserved
from dnsbalance.configuration.yamlpos import PosDict

ENTRY_DEFAULTS = field_defaults(Entry)


def reserved_names(settings: Settings | None, relays: dict[str, Relay]) -> frozenset[str]:
    """Owner names the server answers itself (name servers with glue, SRV targets), so no table may balance them."""
    reserved = {RELAY_LABEL, *(f"{name.lower()}.{RELAY_LABEL}" for name in relays)}
    if settings:
        for ns in settings.nameservers:
            if ns.name == settings.zone:
                reserved.add(APEX)
            elif ns.name.endswith("." + settings.zone):
                reserved.add(ns.name[: -len(settings.zone) - 1])
    return frozenset(reserved)


def read_table(check: Checker, path: Path, region: Region, fleet: Fleet, reserved: frozenset[str],
               required: bool) -> Table:
    """The table's usable names; a name with no usable entry is reported and left out."""
    raw = check.read(path, required)
    names: dict[str, tuple[Entry, ...]] = {}
    # Where the file first spells each name (in any case or with a trailing dot): the line checks across
    # tables report, carried on the Table so they need not read the file again.
    first_lines: dict[str, int] = {}
    top = (check.mapping(raw, path, 1, path.name) if raw is not None else None) or PosDict()
    networks, network_lines = read_networks(check, path, top) if region.level is Level.NETWORK else ((), ())
    for owner, node in top.items():
        line = top.line_of(owner)
        if isinstance(owner, str):
            first_lines.setdefault(normalise_name(owner), line)
        if not isinstance(owner, str) or not (owner == APEX or is_dns_name(owner)):
            check.error(path, line, f"{brief(owner)} is not a valid DNS name")
            continue
        key = normalise_name(owner)
        if key in names:
            check.error(path, line, f"'{owner}' appears twice (names are not case-sensitive)")
            continue
        if key in reserved:
            check.error(path, line, f"'{owner}' is a name server or relay target name of the zone and cannot be "
                                    "balanced")
            continue
        if web_reserved(key):
            check.error(path, line, f"'{owner}' is named like apt's SRV owners (_http._tcp.NAME) or their targets "
                                    "(MIRROR.mirror.NAME), which the zone answers itself")
            continue
        if node is None:
            check.error(path, line, f"{owner}: no entries")
            continue
        node = check.mapping(node, path, line, owner)
        if node is None:
            continue
        entries = _entries(check, path, owner, key, node, fleet)
        if not node:
            check.error(path, line, f"{owner}: no entries")
        elif entries:
            names[key] = entries
    lines = {name: first_lines[name] for name in names}
    return Table(region, path, MappingProxyType(names), MappingProxyType(lines), networks, network_lines)


def _entries(check: Checker, path: Path, owner: str, key: str, node: PosDict, fleet: Fleet) -> tuple[Entry, ...]:
    """The usable `target: priority` entries of one name; SRV names take relays, the others mirrors."""
    srv = key in SRV_NAMES
    entries: list[Entry] = []
    for target, priority in node.items():
        tline = node.line_of(target)
        if srv and target in fleet.mirrors:
            check.error(path, tline, f"{owner}: '{target}' is a mirror; {owner} takes relays")
            continue
        if not srv and target in fleet.relays:
            check.error(path, tline, f"{owner}: '{target}' is a relay; relays serve only {', '.join(SRV_NAMES)}")
            continue
        if target not in fleet.mirrors and target not in fleet.relays:
            known = fleet.relays if srv else fleet.mirrors
            check.error(path, tline, f"{owner}: unknown {'relay' if srv else 'mirror'} {brief(target)}"
                                     f"{did_you_mean(str(target), known)}")
            continue
        tier: int = ENTRY_DEFAULTS["tier"]
        value: Any = priority
        if srv and isinstance(value, PosDict):  # a relay's SRV tier is written `name: {priority: P, tier: T}`
            what = f"{owner}: '{target}'"
            check.known_keys(value, ("priority", "tier"), path, what)
            tier = check.integer(value, "tier", path, what, 0, 65535, tier)
            if "priority" not in value:
                check.error(path, tline, f"{what}: priority is required")
                continue
            value = value["priority"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= DRAINED:
            check.error(path, tline,
                        f"{owner}: priority of '{target}' must be an integer 0..{DRAINED}, got {brief(value)}")
            continue
        if srv:
            service = SRV_SERVICES[key]
            if not fleet.relays[target].port(service):
                needed = "stun" if service == "stun" else f"turn {service.removeprefix('turn-')}"
                check.error(path, tline, f"{owner}: relay '{target}' defines no {needed} port")
                continue
        entries.append(Entry(str(target), value, tier))
    return tuple(entries)
