"""apt's SRV sets against the real server (issue 23 item 6): `_http._tcp.deb.cdn.example.org SRV` asked with a
client subnet from two regions, real HTTP mirrors on 127.0.0.1 probed every second."""
from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.rdatatype

from tests.harness import Server, probe_everything, start_server, wait_cycles
from tests.mirrors import Mirror

ZONE = "cdn.example.org"
OWNER = f"_http._tcp.deb.{ZONE}"
JP_SUBNET, EU_SUBNET = "1.0.16.0/24", "2.0.0.0/24"  # Japan (its country table), France (continent EU's)
# tests/fixtures/zone: country/JP.yaml's weights (jpdrained has 0), continent/EU.yaml's
JP_WEIGHTS = {"jp1": 9000, "jp2": 6000, "jp3": 3000, "jp4": 1000}
ADDRESSES = {"jp1": "192.0.2.1", "jp2": "192.0.2.2", "jp3": "192.0.2.3", "jp4": "192.0.2.4",
             "eu1": "198.51.100.1", "eu2": "198.51.100.2"}


def srv_set(server: Server, subnet: str) -> tuple[dict[str, tuple[int, int, int]], dict[str, set[str]], int]:
    """mirror -> (priority, weight, port); target -> its A records in the additional section; the ECS scope."""
    reply = server.query(OWNER, "SRV", subnet=subnet)
    assert reply.rcode() == 0 and reply.flags & 0x0400  # NOERROR, authoritative
    records = {}
    for rrset in reply.answer:
        for rr in rrset:
            target = str(rr.target)
            assert target.endswith(f".mirror.deb.{ZONE}."), target
            records[target.split(".")[0]] = (rr.priority, rr.weight, rr.port)
    glue = {str(rrset.name): {rr.address for rr in rrset} for rrset in reply.additional
            if rrset.rdtype == dns.rdatatype.A}
    (ecs,) = [o for o in reply.options if o.otype == dns.edns.ECS]
    return records, glue, ecs.scopelen


def resolve(server: Server, target: str) -> set[str]:
    reply = server.query(target, "A")
    assert reply.rcode() == 0
    return {rr.address for rrset in reply.answer for rr in rrset}


def test_apt_gets_the_regions_mirrors_weighted_and_a_dead_one_leaves(tmp_path: Path, config_dir: Path,
                                                                    zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet)
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 1)
        jp, glue, scope = srv_set(server, JP_SUBNET)
        assert set(jp) == set(JP_WEIGHTS)  # jpdrained absent
        assert scope == 20  # the GeoIP network that chose the table, as deb's A answers echo
        # every port is the mirror URL's, every weight the configured one scaled (one 16-bit unit of rounding)
        assert {name: port for name, (_, _, port) in jp.items()} == {n: zone_fleet[n].port for n in JP_WEIGHTS}
        # priorities: a weighted random order's ranks, since apt picks at random among the lowest priority
        assert sorted(priority for priority, _, _ in jp.values()) == [0, 1, 2, 3]
        for name, (_, weight, _) in jp.items():
            assert abs(weight / jp["jp1"][1] - JP_WEIGHTS[name] / JP_WEIGHTS["jp1"]) < 1e-3, (name, weight)
        for name in JP_WEIGHTS:
            target = f"{name}.mirror.deb.{ZONE}."
            assert glue[target] == {ADDRESSES[name]}  # in the additional section
            assert resolve(server, target) == {ADDRESSES[name]}  # and answered by the zone itself

        eu, glue, scope = srv_set(server, EU_SUBNET)
        assert {name: weight for name, (_, weight, _) in eu.items()} == {"eu1": 65535, "eu2": 65535}
        assert glue == {f"{n}.mirror.deb.{ZONE}.": {ADDRESSES[n]} for n in ("eu1", "eu2")} and scope > 0

        zone_fleet["jp2"].stop()
        wait_cycles(server, 2)  # the cycle that sees it dead, and its table in service
        assert "jp2 is DOWN" in server.log()
        jp, glue, _ = srv_set(server, JP_SUBNET)
        assert set(jp) == {"jp1", "jp3", "jp4"} and f"jp2.mirror.deb.{ZONE}." not in glue
        assert set(srv_set(server, EU_SUBNET)[0]) == {"eu1", "eu2"}  # another region's set unchanged
    finally:
        server.stop()
