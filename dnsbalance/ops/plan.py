"""`dnsbalance plan`, pure: what applying one configuration in place of another changes for clients.

Both configurations are built into tables with the same health view (the running server's), so for every
region, owner name and type the plan compares who is listed and with what priority, the configured weight
shares, and the shares clients get (of first addresses, from the answer-set design), including which table
serves the region's clients when its own has nothing usable. Who is left out and why, and which table serves,
are the builder's records (ranking/pool.py, ranking/chains.py), read here. Reading the files and the state
folder is the caller's job (cli.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from fractions import Fraction
from typing import Any

from dnsbalance.configuration.model import DEFAULT_REGION, SRV_NAMES, AdminState, Config, Level, Region
from dnsbalance.geo.countries import country
from dnsbalance.ops.shares import percent
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import ActiveTable, Pool, PoolKey, Tier
from dnsbalance.ranking.answersets import design
from dnsbalance.ranking.build import build_table
from dnsbalance.ranking.chains import chain_of, tier_of
from dnsbalance.ranking.pool import Tried, Why
from dnsbalance.health.view import HealthView, Status

CONTINENT_NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
                   "OC": "Oceania", "SA": "South America"}
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
RESTART_ONLY = ("listen", "status_listen")  # read at start only (README: Operations guide)


@dataclass(frozen=True)
class Served:
    """One region, owner name and type under one configuration."""

    listed: Mapping[str, int]  # target -> priority, as the region's own table lists it
    configured: Mapping[str, Fraction]  # weight shares of the listed entries that can answer (drained: 0)
    delivered: Mapping[str, Fraction]  # what its clients get, health applied, from `source`
    source: Region | None  # the table whose pool serves these clients; None: one the client's place decides
    fail_open: bool = False  # nothing usable anywhere on the way: configured entries served regardless
    status: Mapping[str, Status] = field(default_factory=dict)  # per target left out, as the builder judged it
    pooled: frozenset[str] = frozenset()  # the targets the serving pool draws from (SRV: every tier)
    why: Mapping[str, Why] = field(default_factory=dict)  # per target left out, the builder's reason

    def serving(self) -> tuple[str, ...]:
        return tuple(sorted((n for n, s in self.delivered.items() if s > 0), key=lambda n: (-self.delivered[n], n)))

    def same(self, other: Served) -> bool:
        return (self.listed, self.configured, self.delivered, self.source, self.fail_open, self.pooled) == \
            (other.listed, other.configured, other.delivered, other.source, other.fail_open, other.pooled)


@dataclass(frozen=True)
class Plan:
    lines: tuple[str, ...]
    changes: int  # settings, mirror definitions and (region, name, type) pools that change


def place(region: Region) -> str:
    """How a sentence names the clients of a region: "Japan", "Europe", "network campus"."""
    if region.level is Level.COUNTRY:
        known = country(region.code)
        return known.name if known else region.code
    if region.level is Level.CONTINENT:
        return CONTINENT_NAMES.get(region.code, region.code)
    if region.level is Level.DEFAULT:
        return "every client no other table covers"
    return str(region)


def count(n: int, words: bool = True, what: str = "mirror") -> str:
    """"one mirror", "4 mirrors" (`words`: spelt out up to ten)."""
    return f"{NUMBERS[n] if words and n < len(NUMBERS) else n} {what}{'' if n == 1 else 's'}"


def _noun(rtype: RType) -> str:
    return "relay" if rtype is RType.SRV else "mirror"


def _shares(pool: Pool, rtype: RType, answers: int, minimum: int) -> dict[str, Fraction]:
    if rtype is RType.SRV:  # clients use the lowest tier (SRV priority) and pick by weight within it
        tier = min(c.tier for c in pool.candidates)
        weights = {c.name: c.weight for c in pool.candidates if c.tier == tier}
        total = sum(weights.values())
        return {n: Fraction(w, total) for n, w in weights.items()} if total else {}
    result = design(pool.weights, answers, minimum).first_shares()
    return {c.name: share for c, share in zip(pool.candidates, result)}


def _listed(config: Config, tier: Tier | None, region: Region, key: PoolKey, why: Mapping[str, Why]
            ) -> tuple[dict[str, int], dict[str, Fraction]]:
    """The region's own entries that can answer this type (those in its pools and those the builder left
    out), as listed (target -> priority), and their weight shares (drained and operator-down ones: 0)."""
    if tier is None:
        return {}, {}
    members = set(why)
    for pool in (tier.usable.get(key), tier.fail_open.get(key)):
        if pool is not None:
            members.update(c.name for c in pool.candidates)
    table = next(t for t in config.tables() if t.region == region)
    listed: dict[str, int] = {}
    weights: dict[str, int] = {}
    for entry in table.names.get(key[0], ()):
        if entry.target in members:
            listed[entry.target] = entry.priority
            weights[entry.target] = 0 if why.get(entry.target) in (Why.DRAINED, Why.OPERATOR_DOWN, Why.OPERATOR_DRAIN) \
                else entry.weight
    total = sum(weights.values())
    return listed, {n: Fraction(w, total) if total else Fraction(0) for n, w in weights.items()}


def served(config: Config, table: ActiveTable, region: Region, name: str, rtype: RType) -> Served:
    """Who serves a region's clients for one name and type, from the builder's records: the region's own
    entries and why some are left out, and the tables its clients go through."""
    key = (name, rtype)
    tier = tier_of(table, region)
    left_out = tier.left_out.get(key, ()) if tier is not None else ()
    why = {left.target: left.why for left in left_out}
    listed, configured = _listed(config, tier, region, key, why)
    statuses = {left.target: table.judged[left.key].status for left in left_out}
    settings = config.settings
    for linked, tried in chain_of(table, region, key):
        found = tier_of(table, linked)
        pool = None if found is None else found.usable.get(key) if tried is Tried.SERVED \
            else found.fail_open.get(key) if tried is Tried.FAIL_OPEN else None
        if pool is not None:
            return Served(listed, configured, _shares(pool, rtype, settings.answers, settings.min_answers), linked,
                          pool.fail_open, statuses, frozenset(c.name for c in pool.candidates), why)
    source = None if region.level in (Level.NETWORK, Level.ASN) else DEFAULT_REGION
    return Served(listed, configured, {}, source, False, statuses, why=why)


def _keys(configs: Iterable[Config]) -> list[tuple[Region, str, RType]]:
    found: set[tuple[Region, str, RType]] = set()
    for config in configs:
        for table in config.tables():
            for name in table.names:
                for rtype in (RType.SRV,) if name in SRV_NAMES else (RType.A, RType.AAAA):
                    found.add((table.region, name, rtype))
    order = [Level.NETWORK, Level.ASN, Level.COUNTRY, Level.CONTINENT, Level.DEFAULT]
    return sorted(found, key=lambda k: (order.index(k[0].level), k[0].code, k[1], k[2].name))


def _who(s: Served, own: Region, what: str) -> str:
    """"4 mirrors", "continent AS's 2 mirrors", "no mirror", "3 mirrors regardless of health (fail open)"."""
    n = len(s.serving())
    if s.source is None and not n:
        return "the wider table of each client's place"
    text = count(n, False, what)
    if s.source is not None and s.source != own:
        text = f"{s.source}'s {text}"
    return text + (" regardless of health (fail open)" if s.fail_open else "")


def _sentence(before: Served, after: Served, region: Region, what: str) -> str:
    who = place(region)
    names = after.serving()
    if after.source is None and not names:
        return f"{who} will be served by the wider table of each client's place"
    if not names:
        return f"{who} will get no answer for it from any table"
    same = set(names) == set(before.serving()) and after.source == before.source
    mirrors = f"{count(len(names), True, what)} ({', '.join(names)})"
    via = f" from the {after.source} table" if after.source is not None and after.source != region else ""
    health = ", regardless of health (fail open: nothing usable)" if after.fail_open else \
        ", no longer failing open" if before.fail_open else ""
    if same:
        shares = "other shares" if after.delivered != before.delivered else "the same shares"
        return f"{who} keeps its {mirrors}{via}, at {shares}{health}"
    return f"{who} will be served by {mirrors}{via}{health}"


def _note(served: Served, name: str) -> str:
    """Why a listed target gets nothing now, when health or SRV tiers are the reason."""
    status = served.status.get(name)
    if served.why.get(name) is Why.OPERATOR_DRAIN:
        return "; drained now (dnsbalance drain), before and after"
    if status is Status.PENDING and name not in served.pooled:
        return "; pending: served after its first good probe"
    if status is Status.DOWN:
        return "; down now"
    if name in served.pooled and not served.delivered.get(name):
        return "; a later SRV tier: used when the first has nothing usable"
    return ""


def pool_change(region: Region, name: str, rtype: RType, before: Served, after: Served) -> list[str]:
    """The lines for one (region, name, type), [] when its clients see no difference."""
    if before.same(after):
        return []
    what = _noun(rtype)
    lines = [(f"{region} {name} {rtype.name}: {_who(before, region, what)} -> {_who(after, region, what)}: "
              f"{_sentence(before, after, region, what)}")]
    added = [n for n in after.listed if n not in before.listed]
    removed = [n for n in before.listed if n not in after.listed]
    drained = [n for n in after.listed if n in before.listed and after.configured.get(n) == 0
               and before.configured.get(n, 0) > 0]
    returned = [n for n in after.listed if n in before.listed and after.configured.get(n, 0) > 0
                and before.configured.get(n) == 0]
    moved = [n for n in after.listed if n in before.listed and after.listed[n] != before.listed[n]
             and n not in drained and n not in returned]
    alone = [n for n in after.listed if n in before.listed and n not in (*drained, *returned, *moved)]
    if added:
        lines.append("  added: " + ", ".join(
            f"{n} (priority {after.listed[n]}{_note(after, n)})" for n in added))
    if removed:
        lines.append("  removed: " + ", ".join(removed))
    if drained:
        lines.append("  drained: " + ", ".join(
            f"{n} ({'priority 10000' if after.why.get(n) is Why.DRAINED else 'state: down'})" for n in drained))
    if returned:
        lines.append("  back in service: " + ", ".join(f"{n} (priority {after.listed[n]})" for n in returned))
    if moved:
        lines.append("  priority: " + ", ".join(f"{n} {before.listed[n]} -> {after.listed[n]}" for n in moved))
    if alone and (added or removed or drained or returned or moved):
        lines.append("  left alone: " + ", ".join(n + (" (drained)" if not after.configured.get(n) else "")
                                                  for n in alone))
    rows = []
    for n in sorted({*before.configured, *after.configured, *before.delivered, *after.delivered}):
        c0, c1 = before.configured.get(n), after.configured.get(n)
        d0, d1 = before.delivered.get(n, Fraction(0)), after.delivered.get(n, Fraction(0))
        if c0 == c1 and d0 == d1:
            continue
        rows.append(f"    {n:<14} {_arrow(c0, c1):<22} {_arrow(d0, d1)}{_note(after, n)}")
    if rows:
        lines.append(f"    {'':<14} {'configured share':<22} delivered to clients (first address)"
                     if rtype is not RType.SRV else f"    {'':<14} {'configured share':<22} delivered (SRV weight)")
        lines += rows
    return lines


def _arrow(before: Fraction | None, after: Fraction | None) -> str:
    def shown(value: Fraction | None) -> str:
        return "-" if value is None else "0%" if value == 0 else percent(value)
    return shown(before) if before == after else f"{shown(before)} -> {shown(after)}"


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """A settings dataclass as dotted keys -> values, for a field-by-field comparison."""
    if is_dataclass(value) and not isinstance(value, type):
        found: dict[str, Any] = {}
        for item in fields(value):
            if item.compare:
                found.update(_flat(getattr(value, item.name), f"{prefix}{item.name}."))
        return found
    return {prefix.rstrip("."): value}


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bytes):
        return "(set)"  # cookie secrets and NSIDs are not printed
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):
        return str(value.value)
    if is_dataclass(value) and not isinstance(value, type):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in _flat(value, "").items()) + "}"
    return str(value)


def settings_changes(before: Config, after: Config) -> list[str]:
    old, new = _flat(before.settings, ""), _flat(after.settings, "")
    lines = []
    for key in sorted({*old, *new}):
        if key == "state_dir" or old.get(key) == new.get(key):
            continue
        lines.append(f"settings: {key}: {_show(old.get(key))} -> {_show(new.get(key))}"
                     + (" (takes effect at the next start)" if key in RESTART_ONLY else ""))
    return lines


def _targets_changes(kind: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    lines = []
    for name in sorted({*before, *after}):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None and new is not None:
            lines.append(f"{kind} {name}: new ({', '.join(new.ipv4 + new.ipv6) or 'no address'})")
        elif new is None:
            lines.append(f"{kind} {name}: removed")
        else:
            was, now = _flat(old, ""), _flat(new, "")
            parts = [f"{key} {_show(was.get(key))} -> {_show(now.get(key))}" for key in now
                     if key != "name" and was.get(key) != now.get(key)]
            drained = " (drained from every table)" if now.get("state") is AdminState.DOWN \
                and was.get("state") is not AdminState.DOWN else ""
            lines.append(f"{kind} {name}: {'; '.join(parts)}{drained}")
    return lines


def file_changes(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> list[str]:
    changed = [("new " if n not in before else "removed " if n not in after else "") + n
               for n in sorted({*before, *after}) if before.get(n) != after.get(n)]
    return [f"files: {', '.join(changed)}"] if changed else []


def plan(running: Config, proposed: Config, health: HealthView, drained: frozenset[str] = frozenset()) -> Plan:
    """Every difference clients would see if `proposed` replaced `running`, the same health and the same
    operators' drains (`dnsbalance drain`: they stay in force across a reload) applying."""
    old_table = build_table(running, health, 0, 0, drained=drained)
    new_table = build_table(proposed, health, 0, 0, drained=drained)
    lines = settings_changes(running, proposed)
    lines += _targets_changes("mirror", running.mirrors, proposed.mirrors)
    lines += _targets_changes("relay", running.relays, proposed.relays)
    changes = len(lines)
    for region, name, rtype in _keys((running, proposed)):
        found = pool_change(region, name, rtype, served(running, old_table, region, name, rtype),
                            served(proposed, new_table, region, name, rtype))
        if found:
            changes += 1
            lines += found
    return Plan(tuple(lines), changes)
