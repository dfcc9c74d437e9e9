"""GeoIP: the built-in database, operator databases by metadata, IPv4-mapped addresses, the prefix cache."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from dnsbalance.geo.countries import continent_of, country
from dnsbalance.geo.locate import GeoIP, GeoIPError, builtin_database
from tests.harness import write_mmdb


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_builtin_database_locates_well_known_networks() -> None:
    geo = GeoIP.open("builtin", Path("."))
    assert geo.path == builtin_database()
    # Blocks whose registration is stable: APNIC's JP allocation for the University of Tokyo,
    # RIPE's German allocation to Deutsche Telekom, and the WIDE project's IPv6 block.
    for address, expected in [("133.11.0.1", ("JP", "AS")), ("2001:200::1", ("JP", "AS")),
                              ("80.128.0.1", ("DE", "EU"))]:
        location = geo.locate(ip(address))
        assert (location.country, location.continent) == expected, address
    private = geo.locate(ip("10.1.2.3"))
    assert (private.country, private.continent) == (None, None)


def test_ipv4_mapped_addresses_are_unmapped(country_mmdb: Path) -> None:
    geo = GeoIP(country_mmdb)
    assert geo.locate(ip("::ffff:1.0.16.5")).country == "JP"
    assert geo.locate(ip("::ffff:127.0.0.3")).country == "DE"


def test_prefix_cache_answers_without_the_database(country_mmdb: Path) -> None:
    geo = GeoIP(country_mmdb)
    first = geo.locate(ip("1.0.16.7"))
    assert first.prefix_len == 20 and first.country == "JP"
    geo._reader.close()  # a cached /24 must not touch the reader again
    assert geo.locate(ip("1.0.16.200")) is first


def test_narrow_networks_are_not_cached_per_24(country_mmdb: Path) -> None:
    geo = GeoIP(country_mmdb)
    assert geo.locate(ip("127.0.0.2")).country == "JP"  # a /32 in the test database
    assert geo.locate(ip("127.0.0.3")).country == "DE"  # same /24, another answer


def test_non_country_database_is_refused(tmp_path: Path) -> None:
    path = write_mmdb(tmp_path / "asn.mmdb", database_type="GeoLite2-ASN")
    with pytest.raises(GeoIPError, match="is not a Country or City database"):
        GeoIP(path)


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.mmdb"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(GeoIPError, match="cannot open GeoIP database"):
        GeoIP(path)


def test_country_codes() -> None:
    assert country("JPN").alpha2 == "JP" and country("jp").alpha3 == "JPN"
    assert continent_of("DE") == "EU" and continent_of("BR") == "SA" and continent_of("AQ") == "AN"
    assert country("QQ") is None
