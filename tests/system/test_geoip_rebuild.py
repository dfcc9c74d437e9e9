"""The built-in GeoIP data (issue 15, item 9): `dnsbalance geoip rebuild` writes it into the state folder from
Tor's geoip files, validated before it replaces anything; `geoip.database: builtin` prefers that copy; and a
reload picks up a database file replaced at the same path, in every worker too."""
from __future__ import annotations

import ipaddress
import os
import random
import subprocess
import sys
import time
from bisect import bisect_right
from pathlib import Path

import maxminddb
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from dnsbalance.geo.mmdb_write import Range, write_mmdb
from tests.harness import NETWORKS, ROOT, Server, start_server

TOR = Path("/usr/share/tor")
JP = {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}
EU = {"198.51.100.1", "198.51.100.2"}
DEFAULT = {"203.0.113.1", "203.0.113.2"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnsbalance", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_writer_finds_every_range_at_every_record_size() -> None:
    rng = random.Random(7)
    records = [{"country": {"iso_code": "JP"}, "continent": {"code": "AS"}}, {"country": {"iso_code": "FR"}}]
    ranges: list[Range] = []
    for start, end, gap, width in ((0, 1 << 32, 22, 20), (1 << 125, 1 << 128, 100, 90)):  # IPv4, then IPv6
        position = start
        for _ in range(1000):  # ranges of every width, gaps between them
            position += rng.randint(0, 1 << rng.randint(0, gap))
            last = position + rng.randint(0, 1 << rng.randint(0, width))
            if last >= end:
                break
            ranges.append(Range(position, last, rng.randint(0, 1)))
            position = last + 1
    firsts = [r.first for r in ranges]
    for size in (24, 28, 32):
        path = Path(f"/dev/shm/dnsbalance-test-{os.getpid()}-{size}.mmdb")
        path.write_bytes(write_mmdb(ranges, records, "test-Country", "test", record_size=size))
        try:
            reader = maxminddb.open_database(str(path))
            assert reader.metadata().record_size == size
            for item in ranges[::7]:
                for value in (item.first, item.last):
                    address = ipaddress.ip_address(value) if value >= 1 << 32 else ipaddress.IPv4Address(value)
                    assert reader.get(address) == records[item.record], (size, address)
            for _ in range(3000):  # random addresses: in a range, or in no range
                value = rng.randrange(1 << 32) if rng.random() < 0.5 else rng.randrange(1 << 125, position)
                at = bisect_right(firsts, value) - 1
                expected = records[ranges[at].record] if at >= 0 and ranges[at].last >= value else None
                address = ipaddress.IPv4Address(value) if value < 1 << 32 else ipaddress.IPv6Address(value)
                assert reader.get(address) == expected, (size, address)
            reader.close()
        finally:
            path.unlink()
    with pytest.raises(ValueError, match="overlap"):
        write_mmdb([Range(10, 20, 0), Range(15, 30, 1)], records, "test-Country", "test")


def builtin_config(config: Path) -> None:
    settings = config / "dnsbalance.yaml"
    settings.write_text(settings.read_text().replace("database: test.mmdb", "database: builtin"))


def test_rebuild_from_tor_geoipdb_into_the_state_folder(config_dir: Path) -> None:
    assert (TOR / "geoip").exists() and (TOR / "geoip6").exists(), \
        "tor-geoipdb missing (apt-get install tor-geoipdb): the rebuild reads its files"
    builtin_config(config_dir)
    result = cli("geoip", "rebuild", "--config", str(config_dir), "--from", str(TOR))
    assert result.returncode == 0, result.stdout + result.stderr
    target = config_dir / "state" / "geoip" / "builtin-country.mmdb"
    assert f"wrote {target}:" in result.stdout
    assert [p.name for p in target.parent.iterdir()] == ["builtin-country.mmdb"]  # no scratch file left
    reader = maxminddb.open_database(str(target))
    assert reader.metadata().database_type == "dnsbalance-builtin-Country"
    rng = random.Random(3)
    for name, ipv4 in (("geoip", True), ("geoip6", False)):
        lines = [line.split(",") for line in (TOR / name).read_text().splitlines()
                 if line and not line.startswith("#") and not line.endswith("??")]
        for first, last, code in rng.sample(lines, 300):  # sampled here, not as the command samples
            for value in (first, last):
                address = ipaddress.IPv4Address(int(value)) if ipv4 else ipaddress.IPv6Address(value)
                if not ipv4 and int(address) < 1 << 32:
                    continue
                assert reader.get(address)["country"]["iso_code"] == code, address
    assert reader.get("1.0.16.1")["continent"] == {"code": "AS"}
    reader.close()
    shown = cli("geoip", "show", "--config", str(config_dir))
    assert shown.returncode == 0
    assert f"{target} (dnsbalance-builtin-Country, built-in, rebuilt into the state folder" in shown.stdout


def tor_files(folder: Path, countries: int = 120, broken: str | None = None) -> Path:
    """Small geoip and geoip6 files in Tor's format: one /24 and one /32 per country."""
    folder.mkdir()
    codes = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(countries)]
    v4 = ["# Generated: Mon, 1 Jun 2026 00:00:00 GMT"]
    v4 += [f"{(10 << 24) + (i << 8)},{(10 << 24) + (i << 8) + 255},{code}" for i, code in enumerate(codes)]
    v4.append("3000000000,3000000255,??")
    if broken:
        v4.insert(5, broken)
    v6 = [f"2001:{i:x}::,2001:{i:x}:ffff:ffff:ffff:ffff:ffff:ffff,{code}" for i, code in enumerate(codes)]
    (folder / "geoip").write_text("\n".join(v4) + "\n")
    (folder / "geoip6").write_text("\n".join(v6) + "\n")
    return folder


def test_rebuild_refuses_bad_sources_and_keeps_the_copy_in_use(config_dir: Path, tmp_path: Path) -> None:
    good = cli("geoip", "rebuild", "--config", str(config_dir), "--from", str(tor_files(tmp_path / "good")))
    assert good.returncode == 0, good.stderr
    target = config_dir / "state" / "geoip" / "builtin-country.mmdb"
    reader = maxminddb.open_database(str(target))
    assert reader.get("10.0.1.7")["country"]["iso_code"] == "AB" and reader.get("3000000001") is None
    assert reader.get("2001:2::1")["country"]["iso_code"] == "AC"
    reader.close()
    kept = target.read_bytes()
    broken = cli("geoip", "rebuild", "--config", str(config_dir), "--from",
                 str(tor_files(tmp_path / "broken", broken="167772160,16777,JPN")))
    assert broken.returncode == 1
    assert f"not rebuilt (the database in use is unchanged): {tmp_path}/broken/geoip:6: 'JPN' is not a " \
           "country code" in broken.stderr
    few = cli("geoip", "rebuild", "--config", str(config_dir), "--from", str(tor_files(tmp_path / "few", 20)))
    assert few.returncode == 1 and "only 20 countries" in few.stderr
    missing = cli("geoip", "rebuild", "--config", str(config_dir), "--from", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    assert target.read_bytes() == kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["builtin-country.mmdb"]


def country_db(path: Path, moved: dict[str, tuple[str, str]] | None = None) -> None:
    """The harness's test database, with some networks placed in other countries."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for network, (code, continent) in {**NETWORKS, **(moved or {})}.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}, "continent": {"code": continent}})
    writer.to_db_file(str(path))


def test_builtin_prefers_the_state_folders_copy(config_dir: Path, tmp_path: Path) -> None:
    builtin_config(config_dir)
    server = start_server(config_dir, tmp_path / "shipped.log", ipv6=False)
    try:  # the shipped database places no loopback address: the default table
        assert answers(server, source="127.0.0.2") == DEFAULT
    finally:
        server.stop()
    rebuilt = config_dir / "state" / "geoip" / "builtin-country.mmdb"
    rebuilt.parent.mkdir(parents=True)
    country_db(rebuilt)  # places 127.0.0.2 in JP
    server = start_server(config_dir, tmp_path / "rebuilt.log", ipv6=False)
    try:
        assert "GeoIP: the built-in database rebuilt into the state folder" in server.log()
        assert f"GeoIP {rebuilt} (GeoLite2-Country, built-in, rebuilt into the state folder" in server.log()
        assert answers(server, source="127.0.0.2") == JP
        status = server_status(server)
        assert status["geoip"]["path"] == str(rebuilt) and status["geoip"]["origin"].startswith("built-in, rebuilt")
    finally:
        server.stop()


def server_status(server: Server) -> dict:
    import json
    import urllib.request
    with urllib.request.urlopen(f"{server.status_url}/status.json", timeout=5) as reply:
        return json.loads(reply.read())


def answers(server: Server, rounds: int = 60, **query: str) -> set[str]:
    found: set[str] = set()
    for _ in range(rounds):
        reply = server.query("deb.cdn.example.org", **query)
        found |= {rr.address for rrset in reply.answer for rr in rrset}
    return found


@pytest.mark.parametrize("workers,how", [("1", "rename"), ("2", "rename"), ("2", "rewrite")])
def test_reload_picks_up_a_database_replaced_at_the_same_path(config_dir: Path, tmp_path: Path, workers: str,
                                                              how: str) -> None:
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False, extra=("--workers", workers))
    try:
        assert answers(server, subnet="2.0.0.0/24") == EU  # France: the continent's table
        database = config_dir / "test.mmdb"
        fresh = tmp_path / "fresh.mmdb"
        country_db(fresh, {"2.0.0.0/16": ("JP", "AS")})
        if how == "rename":  # a new file renamed over the old one (a new inode)
            os.replace(fresh, database)
        else:  # the same file written over (same inode, another size and time)
            database.write_bytes(fresh.read_bytes())
        assert answers(server, subnet="2.0.0.0/24") == EU  # nothing changes before a reload
        result = cli("reload", "--config", str(config_dir))
        assert result.returncode == 0, result.stdout + result.stderr
        deadline = time.monotonic() + 10  # the workers adopt the supervisor's inputs just after its verdict
        while answers(server, 5, subnet="2.0.0.0/24") != JP:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        # every worker: fresh source ports spread the queries over them
        assert answers(server, 200, subnet="2.0.0.0/24") == JP
        assert answers(server, subnet="1.0.16.0/24") == JP and answers(server, subnet="3.0.0.0/24") == \
            {"198.51.100.11", "198.51.100.12"}
    finally:
        server.stop()
