"""Find a configuration folder's files and read them into a Config, collecting every problem.

    config/dnsbalance.yaml  config/mirrors.yaml  config/default.yaml
    config/continent/EU.yaml  config/country/JP.yaml (or JPN.yaml)

Each file is read once; the order of the problems follows the order above.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

from dnsbalance.configuration.checker import Checker
from dnsbalance.configuration.coverage import drained_names, uncovered_names
from dnsbalance.configuration.mirrors_file import read_fleet
from dnsbalance.configuration.model import DEFAULT_REGION, Config, Level, Region, Table
from dnsbalance.configuration.problems import Problem, not_a_file, shown_path
from dnsbalance.configuration.settings_file import read_settings
from dnsbalance.configuration.table_file import read_table, reserved_names
from dnsbalance.geo.countries import CONTINENTS, country

log = logging.getLogger(__name__)


def check_config(directory: Path) -> tuple[Config | None, list[Problem]]:
    """Every problem in the folder; the Config too when there is no error."""
    check = Checker()
    if not directory.is_dir():
        check.error(directory, 1, "configuration folder does not exist")
        return None, check.problems
    settings = read_settings(check, directory)
    fleet = read_fleet(check, directory)
    reserved = reserved_names(settings, fleet.relays)

    def load(path: Path, region: Region, required: bool = False) -> Table:
        return read_table(check, path, region, fleet, reserved, required)

    default = load(directory / "default.yaml", DEFAULT_REGION, required=True)
    continents = {code: load(path, Region(Level.CONTINENT, code))
                  for code, path in region_files(check, directory / "continent", Level.CONTINENT).items()}
    countries = {code: load(path, Region(Level.COUNTRY, code))
                 for code, path in region_files(check, directory / "country", Level.COUNTRY).items()}
    if settings is None:
        return None, check.problems
    config = Config(directory, settings, MappingProxyType(fleet.mirrors), MappingProxyType(fleet.relays), default,
                    MappingProxyType(continents), MappingProxyType(countries))
    drained_names(check, config)
    if not check.has_errors():
        uncovered_names(check, config)  # with errors about, a missing name is likely one of their echoes
    log.debug("configuration %s: %d table(s), %d problem(s)", directory, len(config.tables()), len(check.problems))
    if check.has_errors():
        return None, check.problems
    return config, check.problems


def region_files(check: Checker, folder: Path, level: Level) -> dict[str, Path]:
    """Code -> file, for continent/*.yaml or country/*.yaml; reports unknown and doubled codes."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    unread_tables(check, folder)
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml") or path.name.startswith(".") or not_a_file(path):
            continue
        stem = path.stem.upper()
        code: str | None
        if level is Level.CONTINENT:
            code = stem if stem in CONTINENTS else None
            if code is None:
                check.error(path, 1, f"unknown continent code {path.stem!a} (expected one of {' '.join(CONTINENTS)})")
                continue
        else:
            known = country(stem)
            code = known.alpha2 if known and len(stem) in (2, 3) else None  # alpha-3 (JPN.yaml) names JP too
            if code is None:
                check.error(path, 1, f"unknown country code {path.stem!a} (expected ISO 3166 alpha-2 or alpha-3)")
                continue
        if code in found:
            check.error(path, 1, f"{level.value} {code} is defined twice: {shown_path(found[code].name)} and "
                               f"{shown_path(path.name)}")
            continue
        found[code] = path
    return found


def unread_tables(check: Checker, folder: Path) -> None:
    """What looks like a table in continent/ or country/ but would not be read: the clients it was meant
    for would move to a wider table without a word. An error, with its path."""
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in (".yaml", ".yml"):
            continue
        if path.suffix not in (".yaml", ".yml"):
            check.error(path, 1, f"not read: table files end in .yaml or .yml (lower case), not {path.suffix!a}")
            continue
        reason = not_a_file(path)
        if reason is not None:
            check.error(path, 1, f"not read: {reason}")
