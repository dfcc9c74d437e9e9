"""A signed copy of the fixture zone, for the DNSSEC system tests (unbound, delv), and the CLI they run."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from tests.harness import FIXTURES, ROOT

# Clients on their own /24s (unbound sends each /24 as ECS): one per region the tables know.
REGIONS = {"JP": ("127.1.0.7", "AS"), "DE": ("127.2.0.7", "EU"), "BR": ("127.3.0.7", "SA")}
JP_AFTER = "127.1.1.7"  # a JP client unbound has no cache entry for, asked after the change


def dnsbalance(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnsbalance", *args], capture_output=True, text=True, cwd=ROOT,
                          check=False, timeout=60)


def signed_zone(target: Path) -> Path:
    """The fixture zone signed (`dnssec: {sign: true}`, no key yet), health off, clients of REGIONS in its
    GeoIP database, two STUN relays, and `v4`: AAAA in JP's table, none in the default's."""
    shutil.copytree(FIXTURES / "zone", target)
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country",
                        description={"en": "dnsbalance DNSSEC test database"})
    for code, (client, continent) in {**REGIONS, "JP2": (JP_AFTER, "AS")}.items():
        writer.insert_network(IPSet([client.rsplit(".", 1)[0] + ".0/24"]),
                              {"country": {"iso_code": code[:2]}, "continent": {"code": continent}})
    writer.to_db_file(str(target / "test.mmdb"))
    with (target / "mirrors.yaml").open("a") as handle:
        handle.write("relays:\n  r1: {addresses: [127.0.0.1], stun: 3478}\n"
                     "  r2: {addresses: [127.0.0.1], stun: 3479}\n")
    with (target / "default.yaml").open("a") as handle:
        handle.write("_stun._udp: {r1: 0, r2: 100}\nv4: {def2: 0}\n")  # v4: no AAAA here, JP's has one
    with (target / "country" / "JP.yaml").open("a") as handle:
        handle.write("v4: {jp2: 0}\n")  # jp2: the first test takes jp1 down
    with (target / "dnsbalance.yaml").open("a") as handle:
        handle.write("health: {enabled: false}\ndnssec: {sign: true}\n")
    return target
