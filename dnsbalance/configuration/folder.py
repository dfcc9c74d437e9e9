"""Find a configuration folder's files and read them into a Config, collecting every problem.

    config/dnsbalance.yaml  config/mirrors.yaml  config/default.yaml
    config/continent/EU.yaml  config/country/JP.yaml (or JPN.yaml)
    config/network/NAME.yaml  config/asn/AS2500.yaml

Each file is read once; the order of the problems follows the order above.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

from dnsbalance.configuration.archive_check import archive_names, carried_archives
from dnsbalance.configuration.checker import Checker, FileSource
from dnsbalance.configuration.coverage import drained_names, uncovered_names
from dnsbalance.configuration.mirrors_file import read_fleet
from dnsbalance.configuration.model import DEFAULT_REGION, Config, Level, Region, Settings, Table
from dnsbalance.configuration.network_file import asn_of, overlapping_networks
from dnsbalance.configuration.problems import Problem, shown_path
from dnsbalance.configuration.reading import not_a_file
from dnsbalance.configuration.requirement_check import required_names
from dnsbalance.configuration.settings_file import read_settings
from dnsbalance.configuration.table_file import read_table, reserved_names
from dnsbalance.configuration.suggest import continent_code_for, country_code_for
from dnsbalance.geo.countries import CONTINENTS, country

log = logging.getLogger(__name__)


def check_config(directory: Path, paths_from: Path | None = None,
                 files: FileSource | None = None) -> tuple[Config | None, list[Problem]]:
    """Every problem in the folder; the Config too when there is no error. `paths_from`: where the folder's
    relative paths point when it is a copy (see read_settings); `files`: the folder's files as already read
    (see config_files), else each is read from disk as it is needed."""
    check = Checker(files)
    if not directory.is_dir():
        check.error(directory, 1, "configuration folder does not exist")
        return None, check.problems
    settings = read_settings(check, directory, paths_from)
    fleet = read_fleet(check, directory, archive_names(settings))
    reserved = reserved_names(settings, fleet.relays)

    def load(path: Path, region: Region, required: bool = False) -> Table:
        return read_table(check, path, region, fleet, reserved, required)

    default = load(directory / "default.yaml", DEFAULT_REGION, required=True)
    continents = {code: load(path, Region(Level.CONTINENT, code))
                  for code, path in region_files(check, directory / "continent", Level.CONTINENT).items()}
    countries = {code: load(path, Region(Level.COUNTRY, code))
                 for code, path in region_files(check, directory / "country", Level.COUNTRY).items()}
    networks = {code: load(path, Region(Level.NETWORK, code))
                for code, path in region_files(check, directory / "network", Level.NETWORK).items()}
    overlapping_networks(check, list(networks.values()))
    asns = {asn_of(code) or 0: load(path, Region(Level.ASN, code))
            for code, path in region_files(check, directory / "asn", Level.ASN).items()}
    if settings is None:
        return None, check.problems
    if asns and settings.geoip.asn_database is None:
        for table in asns.values():
            check.error(table.source, 1, f"{table.region.code} is an AS table but dnsbalance.yaml sets no "
                                         "geoip.asn_database to find a client's AS")
    unknown_entries(check, directory, settings)
    config = Config(directory, settings, MappingProxyType(fleet.mirrors), MappingProxyType(fleet.relays), default,
                    MappingProxyType(continents), MappingProxyType(countries), MappingProxyType(networks),
                    MappingProxyType(asns))
    drained_names(check, config)
    carried_archives(check, config)
    required_names(check, config)
    if not check.has_errors():
        uncovered_names(check, config)  # with errors about, a missing name is likely one of their echoes
    log.debug("configuration %s: %d table(s), %d problem(s)", directory, len(config.tables()), len(check.problems))
    if check.has_errors():
        return None, check.problems
    return config, check.problems


def region_files(check: Checker, folder: Path, level: Level) -> dict[str, Path]:
    """Code -> file, for continent/, country/, network/ or asn/*.yaml; reports unknown and doubled codes."""
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
                meant = continent_code_for(path.stem)
                hint = f"; did you mean {meant[0]}.yaml ({meant[1]})?" if meant else ""
                check.error(path, 1, f"unknown continent code {path.stem!a} (expected one of {' '.join(CONTINENTS)}"
                                     f"{hint})")
                continue
        elif level is Level.NETWORK:
            code = path.stem  # any name: the table is chosen by its `networks:`, not by its file name
        elif level is Level.ASN:
            number = asn_of(path.stem)
            code = f"AS{number}" if number else None
            if code is None:
                check.error(path, 1, f"unknown AS file name '{path.stem}' (expected AS<number>, e.g. AS2500.yaml)")
                continue
        else:
            known = country(stem)
            code = known.alpha2 if known and len(stem) in (2, 3) else None  # alpha-3 (JPN.yaml) names JP too
            if code is None:
                meant = country_code_for(path.stem)
                hint = f"; did you mean {meant[0]}.yaml ({meant[1]})?" if meant else ""
                check.error(path, 1, f"unknown country code {path.stem!a} (expected ISO 3166 alpha-2 or alpha-3"
                                     f"{hint})")
                continue
        if code in found:
            check.error(path, 1, f"{level.value} {code} is defined twice: {shown_path(found[code].name)} and "
                               f"{shown_path(path.name)}")
            continue
        found[code] = path
    return found


# What a configuration folder holds; anything else at its top would be silently ignored.
KNOWN_FILES = ("dnsbalance.yaml", "mirrors.yaml", "default.yaml")
KNOWN_FOLDERS = ("continent", "country", "network", "asn")


def config_files(directory: Path) -> list[Path]:
    """Every file that reading the folder takes, found without opening any: the YAML files under it (the
    configuration's digest covers them all) and the tables of region folders that are symbolic links to
    folders, which rglob does not enter but region_files does."""
    found = set(directory.rglob("*.y*ml")) | {directory / name for name in KNOWN_FILES}
    for name in KNOWN_FOLDERS:
        folder = directory / name
        if folder.is_symlink() and folder.is_dir():
            found |= {path for path in folder.iterdir() if path.suffix in (".yaml", ".yml")}
    return sorted(found)


def unknown_entries(check: Checker, directory: Path, settings: Settings) -> None:
    """Warn about files and folders at the folder's top that nothing reads (a misspelt `networks/`, a
    `Default.yaml`, a `mirrors.yml`): their tables would otherwise be ignored without a word. Hidden
    entries, the state folder and the GeoIP databases the settings name are expected."""
    used = [settings.state_dir, *(directory / name for name in (settings.geoip.database,
                                                              settings.geoip.asn_database) if name)]
    for path in sorted(directory.iterdir()):
        name = path.name
        if name.startswith(".") or any(path == u or path in u.parents for u in used):
            continue
        if (name in KNOWN_FOLDERS and path.is_dir()) or (name in KNOWN_FILES and path.is_file()):
            continue
        what = "folder" if path.is_dir() else "file"
        check.warning(path, 1, f"unknown {what} '{name}' in the configuration folder is not read (expected "
                               f"{', '.join(KNOWN_FILES)}, and the folders {'/, '.join(KNOWN_FOLDERS)}/)")


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
