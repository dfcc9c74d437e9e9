"""Where a client is: country and continent from a MaxMind-format database, cached per network prefix."""
from __future__ import annotations

import ipaddress
import logging
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import maxminddb

from dnsbalance.files import CHUNK, Refused, open_regular
from dnsbalance.geo.countries import continent_of

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Lookups are cached per /24 (IPv4) and /48 (IPv6) when the database's network is at least that wide,
# so a busy resolver costs one database walk, not one per query.
CACHE_BITS = {4: 24, 6: 48}
CACHE_LIMIT = 1 << 18
MAX_DATABASE_BYTES = 4 << 30  # a full City database is a few hundred MB; anything bigger is not one


@dataclass(frozen=True)
class Location:
    country: str | None  # ISO 3166 alpha-2
    continent: str | None  # AF AN AS EU NA OC SA
    prefix_len: int  # the database network that holds the address: the ECS scope of answers derived from it
    networks: tuple[str, ...] = ()  # network tables covering the address, longest prefix first
    asn: int | None = None  # looked up only when AS tables exist

    def describe(self) -> str:
        place = "unknown location" if self.country is None and self.continent is None else \
            f"country {self.country or '?'}, continent {self.continent or '?'}"
        if self.asn is not None:
            place = f"AS{self.asn}, {place}"
        if self.networks:
            place = f"network {', '.join(self.networks)}; {place}"
        return place


UNKNOWN = Location(None, None, 0)


class GeoIPError(Exception):
    pass


BUILTIN_NAME = "builtin-country.mmdb"
# (path, device, inode, modification time in ns, size): a file replaced or rewritten at the same path is
# another database, to be opened again at the next reload.
FileId = tuple[str, int, int, int, int]


def builtin_database() -> Path:
    """The built-in database as the package ships it."""
    return Path(str(resources.files("dnsbalance.geo").joinpath(f"data/{BUILTIN_NAME}")))


def rebuilt_database(state_dir: Path) -> Path:
    """Where `dnsbalance geoip rebuild` writes the built-in database: preferred to the package's when present."""
    return state_dir / "geoip" / BUILTIN_NAME


def file_id(path: Path, info: os.stat_result) -> FileId:
    return (str(path), info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def unmap(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (::ffff:192.0.2.1, as dual-stack sockets report) -> IPv4."""
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# Addresses looked up once when a database is opened: a database whose tree or data section is damaged fails
# here, before it serves a query.
PROBES = ("1.1.1.1", "8.8.8.8", "81.0.0.1", "200.0.0.1", "2001:200::1", "2a00:1450::1")


def private_copy(path: Path) -> tuple[maxminddb.Reader, FileId]:
    """The database memory-mapped from a copy that only this process knows of (unlinked once open): the
    file can then be replaced, rewritten or truncated in place by anyone without the mapping changing under
    a lookup, which would be a SIGBUS. A copy caught half-written fails to open, like any damaged file.
    With it, the identity of the file copied (read from the open file: the one copied, not its successor)."""
    # only a regular file is opened (a FIFO would block the start, /dev/zero fill the disk), and no more than
    # MAX_DATABASE_BYTES of it is copied
    with os.fdopen(open_regular(path), "rb") as source, tempfile.NamedTemporaryFile(
            prefix="dnsbalance-geoip-", suffix=".mmdb", delete=False) as copy:
        try:
            identity = file_id(path, os.fstat(source.fileno()))
            copied = 0
            while chunk := source.read(min(CHUNK, MAX_DATABASE_BYTES + 1 - copied)):
                copy.write(chunk)
                copied += len(chunk)
                if copied > MAX_DATABASE_BYTES:  # a file that grows while it is copied, too
                    raise Refused(f"larger than {MAX_DATABASE_BYTES >> 30} GiB; not read")
            copy.flush()
            return maxminddb.open_database(copy.name), identity
        finally:
            os.unlink(copy.name)


class GeoIP:
    """A Country or City database (GeoLite2, GeoIP2, DB-IP, or the built-in one)."""

    def __init__(self, path: Path, origin: str = "configured") -> None:
        """`origin`: where the file comes from, as the log and the status page say it."""
        try:
            self._reader, self.identity = private_copy(path)
            for probe in PROBES:
                self._reader.get_with_prefix_len(probe)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise GeoIPError(f"{path}: cannot open GeoIP database: {exc}") from None
        kind = self._reader.metadata().database_type
        # Country and City databases of every vendor share the country/continent record layout.
        if "Country" not in kind and "City" not in kind:
            self._reader.close()
            raise GeoIPError(f"{path}: database type '{kind}' is not a Country or City database")
        self.path = path
        self.database_type = kind
        self.origin = origin
        self.prefix_cache: dict[tuple[int, int], Location] = {}  # by the address's leading CACHE_BITS
        self._interned: dict[Location, Location] = {}

    @classmethod
    def open(cls, setting: str, directory: Path, state_dir: Path | None = None) -> GeoIP:
        """`builtin`, or a path relative to the configuration folder. `builtin` is the state folder's
        rebuilt copy when there is one (a damaged one is logged and the package's used instead)."""
        if setting != "builtin":  # named in full in the log, the page and every error
            return cls(Path(os.path.abspath(directory / setting)))
        rebuilt = rebuilt_database(state_dir) if state_dir is not None else None
        if rebuilt is not None and rebuilt.exists():
            try:
                found = cls(rebuilt, "built-in, rebuilt into the state folder")
                log.info("GeoIP: the built-in database rebuilt into the state folder, %s (%s)", rebuilt,
                         found.description)
                return found
            except GeoIPError as exc:
                log.error("GeoIP: not using the state folder's rebuilt database (%s); using the package's", exc)
        return cls(builtin_database(), "built-in, as shipped")

    @property
    def description(self) -> str:
        """The database's own description (source and date of its data), English, or ''."""
        text = self._reader.metadata().description
        return str(text.get("en", "")) if isinstance(text, dict) else ""

    def describe(self) -> str:
        """One line for the log and the status page: which file, of what kind, from where."""
        about = self.description
        return f"{self.path} ({self.database_type}, {self.origin}{'; ' + about if about else ''})"

    def close(self) -> None:
        self._reader.close()

    def locate(self, address: IPAddress) -> Location:
        address = unmap(address)
        bits = CACHE_BITS[address.version]
        width = 32 if address.version == 4 else 128
        key = (address.version, int(address) >> (width - bits))
        cached = self.prefix_cache.get(key)
        if cached is not None:
            return cached
        location = self._lookup(address)
        if location.prefix_len <= bits:
            if len(self.prefix_cache) >= CACHE_LIMIT:
                self.prefix_cache.clear()
            self.prefix_cache[key] = location
        return location

    def _lookup(self, address: IPAddress) -> Location:
        try:
            record, prefix_len = self._reader.get_with_prefix_len(address)
        except (ValueError, maxminddb.InvalidDatabaseError) as exc:
            log.warning("GeoIP lookup of %s failed: %s", address, exc)
            return UNKNOWN
        country, continent = _place(record)
        location = Location(country, continent, prefix_len)
        return self._interned.setdefault(location, location)


def _place(record: Any) -> tuple[str | None, str | None]:
    if not isinstance(record, dict):
        return None, None
    country = (record.get("country") or record.get("registered_country") or {}).get("iso_code")
    continent = (record.get("continent") or {}).get("code")
    if country and not continent:
        continent = continent_of(country)
    return country, continent
