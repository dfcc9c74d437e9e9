"""Which AS a client's address belongs to, from an ASN database in the GeoLite2-ASN layout (MaxMind's
GeoLite2-ASN, DB-IP's ASN lite, or one built from open data): `autonomous_system_number` per network."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import maxminddb

from dnsbalance.geo.locate import GeoIPError, IPAddress, private_copy, unmap

log = logging.getLogger(__name__)


class AsnHit(NamedTuple):
    asn: int | None  # None: the address is in no AS the database knows
    prefix_len: int  # the database network that holds the address, in the address's own family


class AsnDatabase:
    def __init__(self, path: Path) -> None:
        try:
            self._reader, self.identity = private_copy(path)  # as the GeoIP database: regular files only
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise GeoIPError(f"{path}: cannot open ASN database: {exc}") from None
        kind = self._reader.metadata().database_type
        if "ASN" not in kind.upper():
            self._reader.close()
            raise GeoIPError(f"{path}: database type '{kind}' is not an ASN database")
        self.path = path
        self.database_type = kind

    @classmethod
    def open(cls, setting: str | None, directory: Path) -> AsnDatabase | None:
        """The database `geoip.asn_database` names (relative to the configuration folder), if any."""
        return cls(Path(os.path.abspath(directory / setting))) if setting else None

    def lookup(self, address: IPAddress) -> AsnHit:
        address = unmap(address)
        try:
            record, prefix_len = self._reader.get_with_prefix_len(address)
        except (ValueError, maxminddb.InvalidDatabaseError) as exc:
            log.warning("ASN lookup of %s failed: %s", address, exc)
            return AsnHit(None, 32 if address.version == 4 else 128)  # a failure is no answer for others
        number = record.get("autonomous_system_number") if isinstance(record, dict) else None
        return AsnHit(number if isinstance(number, int) else None, prefix_len)
