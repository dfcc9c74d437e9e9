"""What a table is a function of, and reading it from the configuration folder.

A table is built from (configuration, health state, generation) and nothing else: its SOA serial and the
seed of its precomputed draws are derived from those, so every worker of a supervisor, and `explain`,
build the same table byte for byte from the same inputs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from dnsbalance.configuration.folder import config_files
from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import Config
from dnsbalance.configuration.problems import Problem
from dnsbalance.configuration.reading import Abandoned, ReadFiles, ReadTimeout, read_all
from dnsbalance.geo.asn import AsnDatabase
from dnsbalance.geo.locate import FileId, GeoIP, GeoIPError
from dnsbalance.health.state import HealthState

Fingerprint = tuple[tuple[str, int, int], ...]  # (relative path, mtime ns, size) of every configuration file


@dataclass(frozen=True)
class Loaded:
    config: Config
    geoip: GeoIP
    fingerprint: Fingerprint
    digest: str  # of the files' content: what the table seed is made of
    newest: float  # the newest file's modification time: the SOA serial before any health cycle
    asn: AsnDatabase | None = None  # geoip.asn_database, opened when some AS table needs it
    # The configuration files' content as digested (relative path -> bytes): what the state folder's copy
    # of the configuration in service is written from (empty where the files were not read: workers).
    files: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    def database_files(self) -> tuple[FileId, FileId | None]:
        """The identities of the GeoIP and ASN files in use: a worker reopens its own when they change."""
        return self.geoip.identity, self.asn.identity if self.asn is not None else None


def _files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.y*ml"))


def fingerprint(directory: Path) -> Fingerprint:
    """Name, mtime and size of every configuration file: a change is picked up at the next cycle."""
    found = []
    for path in _files(directory):
        try:
            info = path.stat()
        except OSError:
            continue
        found.append((str(path.relative_to(directory)), info.st_mtime_ns, info.st_size))
    return tuple(found)


def read_folder(directory: Path) -> ReadFiles:
    """Every configuration file of the folder, read once within the deadline (configuration/reading.py)."""
    return read_all(directory, config_files(directory) if directory.is_dir() else [])


def read_files(directory: Path) -> dict[str, bytes]:
    """Relative path -> content of every configuration file that can be read."""
    return read_folder(directory).contents()


def digest_of(files: Mapping[str, bytes]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def content_digest(directory: Path) -> str:
    return digest_of(read_files(directory))


def load(directory: Path) -> tuple[Loaded | None, list[Problem]]:
    """Configuration and GeoIP database together, or the problems that stop them loading."""
    stamp = fingerprint(directory)
    try:
        read = read_folder(directory)
    except ReadTimeout as exc:
        return None, [Problem(exc.path, 1, f"not read within {exc.seconds:g}s (a file system that does not answer?); "
                                           "nothing was changed")]
    except Abandoned:
        return None, [Problem(directory, 1, "not read: the server is stopping")]
    files = read.contents()
    config, problems = check_config(directory, files=read)
    if config is None:
        return None, problems
    try:
        geoip = GeoIP.open(config.settings.geoip.database, directory, config.settings.state_dir)
        asn = open_asn(config, directory)
    except GeoIPError as exc:
        return None, problems + [Problem(directory / "dnsbalance.yaml", 1, str(exc))]
    newest = max((mtime for _, mtime, _ in stamp), default=0) / 1e9
    return Loaded(config, geoip, stamp, digest_of(files), newest, asn, MappingProxyType(files)), problems


def open_asn(config: Config, directory: Path) -> AsnDatabase | None:
    """The ASN reader, only when an AS table can use it (GeoIPError when it cannot be opened)."""
    return AsnDatabase.open(config.settings.geoip.asn_database, directory) if config.asns else None


@dataclass(frozen=True)
class TableInputs:
    """Everything a serving snapshot is built from but the GeoIP reader (which is opened by path): what a
    supervisor sends its workers, so a worker never re-reads files that may have changed since."""

    config: Config
    digest: str
    newest: float
    health: HealthState
    generation: int
    cookie_secret: bytes
    # The GeoIP and ASN files the supervisor has open: a worker whose own differ opens these paths again
    # (a database replaced at the same path is picked up by a reload in every process).
    geoip_file: FileId | None = None
    asn_file: FileId | None = None
    drained: frozenset[str] = frozenset()  # operators' drains in force (dnsbalance/drains.py)

    @property
    def seed(self) -> int:
        """Of the precomputed draws: a hash of configuration, health, drains and generation."""
        health = json.dumps({name: asdict(h) for name, h in sorted(self.health.mirrors.items())}, sort_keys=True)
        text = f"{self.digest}|{health}|{sorted(self.drained)}|{self.generation}".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")

    @property
    def serial(self) -> int:
        """The SOA serial: the time of the newest input, the last health verdict or the newest file."""
        checked = max((h.checked for h in self.health.mirrors.values()), default=0.0)
        return int(max(checked, self.newest)) & 0xFFFFFFFF
