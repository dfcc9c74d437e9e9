"""Checks across tables: names whose entries serve nobody, and names only some regions list."""
from __future__ import annotations

from dnsbalance.configuration.checker import Checker
from dnsbalance.configuration.model import DRAINED, Config, Level, Table
from dnsbalance.geo.countries import continent_of


def _serves(table: Table | None, name: str) -> bool:
    return table is not None and any(e.priority < DRAINED for e in table.names.get(name, ()))


def drained_names(check: Checker, config: Config) -> None:
    """A name whose entries are all drained serves nobody: an error unless a wider table serves it."""
    for table in config.tables():
        for name, entries in table.names.items():
            if not entries or any(e.priority < DRAINED for e in entries):
                continue
            wider: list[Table | None] = []
            if table.region.level is Level.COUNTRY:
                wider.append(config.continents.get(continent_of(table.region.code) or ""))
            if table.region.level is not Level.DEFAULT:
                wider.append(config.default)
            fallback = next((t for t in wider if _serves(t, name)), None)
            if fallback is not None:
                check.warning(table.source, table.line_of(name),
                              f"{name}: every entry is drained (priority {DRAINED}); the {fallback.region} table "
                              "serves these clients")
            else:
                check.error(table.source, table.line_of(name),
                            f"{name}: every entry is drained (priority {DRAINED}) and no wider table serves it")


def uncovered_names(check: Checker, config: Config) -> None:
    """A name that only some regions list leaves every other client with an empty answer: say so."""
    for table in config.tables()[:-1]:  # every table but the default
        for name in table.names:
            if name not in config.default.names:
                check.warning(table.source, table.line_of(name),
                              f"{name}: not in default.yaml, so clients of other regions get no answer for it")
