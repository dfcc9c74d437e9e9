"""What a table is a function of, and reading it from the configuration folder.

A table is built from (configuration, health state, generation) and nothing else: its SOA serial and the
seed of its precomputed draws are derived from those, so every worker of a supervisor, and `explain`,
build the same table byte for byte from the same inputs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import Config
from dnsbalance.configuration.problems import Problem
from dnsbalance.geo.asn import AsnDatabase
from dnsbalance.geo.locate import GeoIP, GeoIPError
from health.state import HealthState

Fingerprint = tuple[tuple[str, int, int], ...]  # (relative path, mtime ns, size) of every configuration file


@dataclass(frozen=True)
class Loaded:
    config: Config
    geoip: GeoIP
    fingerprint: Fingerprint
    digest: str  # of the files' content: what the table seed is made of
    newest: float  # the newest file's modification time: the SOA serial before any health cycle
    asn: AsnDatabase | None = None  # geoip.asn_database, opened when some AS table needs it


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


def content_digest(directory: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path in _files(directory):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def load(directory: Path) -> tuple[Loaded | None, list[Problem]]:
    """Configuration and GeoIP database together, or the problems that stop them loading."""
    stamp = fingerprint(directory)
    digest = content_digest(directory)
    config, problems = check_config(directory)
    if config is None:
        return None, problems
    try:
        geoip = GeoIP.open(config.settings.geoip.database, directory)
        asn = open_asn(config, directory)
    except GeoIPError as exc:
        return None, problems + [Problem(directory / "dnsbalance.yaml", 1, str(exc))]
    newest = max((mtime for _, mtime, _ in stamp), default=0) / 1e9
    return Loaded(config, geoip, stamp, digest, newest, asn), problems


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

    @property
    def seed(self) -> int:
        """Of the precomputed draws: a hash of configuration, health and generation."""
        health = json.dumps({name: asdict(h) for name, h in sorted(self.health.mirrors.items())}, sort_keys=True)
        text = f"{self.digest}|{health}|{self.generation}".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")

    @property
    def serial(self) -> int:
        """The SOA serial: the time of the newest input, the last health verdict or the newest file."""
        checked = max((h.checked for h in self.health.mirrors.values()), default=0.0)
        return int(max(checked, self.newest)) & 0xFFFFFFFF
