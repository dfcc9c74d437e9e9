"""`dnsbalance geoip rebuild`: the built-in Country database made again from Tor's geoip files (Debian's
tor-geoipdb: IPFire Location data, CC BY-SA 4.0) into the state folder, never into the installed package.

The new file is written beside its destination, opened as the server would open it and looked up at
addresses sampled from every source file, and only then renamed over the previous one: a failed or
interrupted rebuild leaves the database in use as it was. Continents come from the country table shipped
with dnsbalance (geo/data/countries.tsv).
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dnsbalance.geo.countries import continent_of
from dnsbalance.geo.locate import GeoIP, GeoIPError, rebuilt_database
from dnsbalance.geo.mmdb_write import IPV4_TOP, Range, write_mmdb

DEFAULT_SOURCE = Path("/usr/share/tor")
DATABASE_TYPE = "dnsbalance-builtin-Country"  # Country: the reader's type check accepts it
MIN_COUNTRIES = 100  # fewer than this is not the world's data: a truncated or wrong file
SAMPLE_EVERY = 997  # one range in this many is looked up in the new file before it is used
# Registry codes that are no ISO country, with the continent IPFire's libloc gives them (as the shipped file has)
PSEUDO_CONTINENTS = {"EU": "EU", "AP": "AS"}


class RebuildError(Exception):
    pass


@dataclass(frozen=True)
class Rebuilt:
    path: Path
    size: int
    countries: int
    ranges: int
    checked: int  # addresses looked up in the new file
    generated: str  # the source's own date


def source_ranges(path: Path, ipv4: bool) -> Iterator[tuple[int, int, str, int]]:
    """(first, last, country, line) of one Tor geoip file; '??' (unknown) is left out, so those clients get the
    default table. RebuildError names the file and line of anything else that does not parse."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise RebuildError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                if line.startswith("#") or not line.strip():
                    continue
                fields = line.strip().split(",")
                if len(fields) != 3:
                    raise RebuildError(f"{path}:{number}: expected FIRST,LAST,COUNTRY")
                first, last, code = fields
                if code == "??":
                    continue
                if not re.fullmatch(r"[A-Z]{2}", code):
                    raise RebuildError(f"{path}:{number}: {code!a} is not a country code")
                try:
                    if ipv4:
                        low, high = int(first), int(last)
                        if not 0 <= low <= high < IPV4_TOP:
                            raise ValueError("out of range")
                    else:
                        low, high = int(ipaddress.IPv6Address(first)), int(ipaddress.IPv6Address(last))
                except ValueError:
                    raise RebuildError(f"{path}:{number}: {first!a}..{last!a} is not an address range") from None
                if not ipv4 and low < IPV4_TOP:
                    continue  # ::/96 holds the IPv4 ranges
                yield low, high, code, number
        except UnicodeDecodeError as exc:
            raise RebuildError(f"{path}: not a text file ({exc.reason})") from None


def generated(path: Path) -> str:
    """The export date in the file's header ("Generated: ..."), or 'unknown'."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.startswith("#"):
                    break
                found = re.match(r"#\s*Generated:\s*(.+)", line)
                if found:
                    return found.group(1).strip()
    except OSError:
        pass
    return "unknown"


def _address(value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if value < IPV4_TOP else ipaddress.IPv6Address(value)


def rebuild(source: Path, state_dir: Path) -> Rebuilt:
    """Build STATE/geoip/builtin-country.mmdb from `source`/geoip and geoip6; RebuildError when the
    sources or the result are not right (nothing replaced then)."""
    codes: dict[str, int] = {}
    ranges: list[Range] = []
    samples: list[tuple[int, str]] = []
    for name, ipv4 in (("geoip", True), ("geoip6", False)):
        for index, (first, last, code, _) in enumerate(source_ranges(source / name, ipv4)):
            ranges.append(Range(first, last, codes.setdefault(code, len(codes))))
            if index % SAMPLE_EVERY == 0:
                samples += [(first, code), (last, code)]
    if len(codes) < MIN_COUNTRIES:
        raise RebuildError(f"{source}: only {len(codes)} countries in geoip and geoip6 (expected the world's, "
                           f"{MIN_COUNTRIES} or more)")
    records = []
    for code in codes:  # in index order
        record: dict[str, object] = {"country": {"iso_code": code}}
        continent = continent_of(code) or PSEUDO_CONTINENTS.get(code)
        if continent:
            record["continent"] = {"code": continent}
        records.append(record)
    date = generated(source / "geoip")
    try:
        data = write_mmdb(ranges, records, DATABASE_TYPE,
                          f"IPFire Location country data via tor-geoipdb ({date}), CC BY-SA 4.0, "
                          f"https://location.ipfire.org/; rebuilt from {source}")
    except ValueError as exc:
        raise RebuildError(f"{source}: {exc}") from None
    target = rebuilt_database(state_dir)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_bytes(data)
        checked = _validate(scratch, samples)
        os.replace(scratch, target)
    except OSError as exc:
        raise RebuildError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        scratch.unlink(missing_ok=True)
    return Rebuilt(target, len(data), len(codes), len(ranges), checked, date)


def _validate(path: Path, samples: list[tuple[int, str]]) -> int:
    """Open the new file as the server does and look the samples up: each must give its source's country."""
    try:
        database = GeoIP(path, "rebuilt")
    except GeoIPError as exc:
        raise RebuildError(f"the rebuilt database does not open: {exc}") from None
    try:
        for value, code in samples:
            found = database.locate(_address(value)).country
            if found != code:
                raise RebuildError(f"the rebuilt database places {_address(value)} in {found}, its source in {code}")
    finally:
        database.close()
    return len(samples)
