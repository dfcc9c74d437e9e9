"""A fleet for push tests: three regions of mirrors on loopback (each on its own 127.0.2.x) behind the real
server, and the per-region shares sampled from the server's active table (status JSON) and from real DNS answers."""
from __future__ import annotations

import json
import urllib.request
from collections import Counter
from pathlib import Path

from tests.harness import Server

REGIONS = {  # region -> (ECS subnet, its mirrors); each has its own table, so a fallback shows
    "country JP": ("1.0.16.0/24", ["jp1", "jp2", "jp3"]),
    "country KR": ("5.0.0.0/24", ["kr1", "kr2"]),
    "country DE": ("3.0.0.0/24", ["de1"]),
}
WIDER = {"as1": "continent AS", "eu1": "continent EU", "def1": "default"}
MIRRORS = [m for _, names in REGIONS.values() for m in names] + list(WIDER)
# each mirror's site listens at its address, which its A record and its probes name
ADDRESS = {name: f"127.0.2.{i + 1}" for i, name in enumerate(MIRRORS)}
NAME_OF = {address: name for name, address in ADDRESS.items()}


def write_push_config(target: Path, mmdb: Path, urls: dict[str, str], master: str, interval: float = 1,
                      extra: str = "", mirror_extra: dict[str, str] | None = None) -> Path:
    (target / "country").mkdir(parents=True)
    (target / "continent").mkdir()
    (target / "test.mmdb").write_bytes(mmdb.read_bytes())
    (target / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nanswers: 1\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n"
        "geoip: {database: test.mmdb}\n"
        # timeout 2: room for a loaded machine, where the sites (threads of the test process, which is busy
        # querying) answer the four reads of each mirror's cycle (stamp, each address as apt's Host, ftpsync's
        # _hierarchy and lock) late; a slow answer is not a dead mirror
        f"health: {{interval: {interval}, timeout: 2, master: '{master}'{extra}}}\n")
    mirror_extra = mirror_extra or {}
    (target / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        f"  {name}: {{addresses: [{ADDRESS[name]}], url: '{urls[name]}'{mirror_extra.get(name, '')}}}\n"
        for name in MIRRORS))
    for region, (_, names) in REGIONS.items():
        (target / "country" / f"{region.split()[1]}.yaml").write_text("deb:\n" + "".join(f"  {n}: 0\n" for n in names))
    (target / "continent" / "AS.yaml").write_text("deb:\n  as1: 0\n")
    (target / "continent" / "EU.yaml").write_text("deb:\n  eu1: 0\n")
    (target / "default.yaml").write_text("deb:\n  def1: 0\n")
    return target


def status(server: Server) -> dict:
    with urllib.request.urlopen(server.status_url + "/status.json", timeout=5) as reply:
        return json.load(reply)


def table_shares(server: Server) -> dict[str, dict[str, float]]:
    """Region -> mirror -> share of the region's A pool in the table in service."""
    found: dict[str, dict[str, float]] = {}
    with urllib.request.urlopen(server.status_url + "/status.json?page=0", timeout=5) as reply:
        regions = json.load(reply)["regions"]  # the pools, for the first page of regions (all of these)
    for region in regions:
        for pool in region["pools"]:
            if pool["name"] == "deb" and pool["type"] == "A":
                found[region["region"]] = {e["target"]: e["configured_share"] for e in pool["entries"]}
    return found


def answered_shares(server: Server, queries: int = 150) -> dict[str, dict[str, float]]:
    """Region -> mirror -> share of real DNS answers (one address each) for clients of that region."""
    found = {}
    for region, (subnet, _) in REGIONS.items():
        counts: Counter[str] = Counter()
        for _ in range(queries):
            reply = server.query("deb.cdn.example.org", subnet=subnet)
            assert reply.answer, "a configured name is never answered empty"
            counts.update(NAME_OF[rr.address] for rr in reply.answer[0])
        total = sum(counts.values())
        found[region] = {name: n / total for name, n in sorted(counts.items())}
    return found


def check_no_stampede(shares: dict[str, dict[str, float]], tolerance: float = 0.0) -> None:
    """Every region answers from its own mirrors, and none takes more than twice its configured share."""
    for region, (_, names) in REGIONS.items():
        got = shares[region]
        assert set(got) <= set(names), f"{region} answered from {sorted(got)}: a detour to a wider table"
        for name, share in got.items():
            assert share <= 2 / len(names) + tolerance, f"{region}: {name} took {share:.0%}"


def show(step: str, shares: dict[str, dict[str, float]]) -> str:
    return f"{step:<34}" + "  ".join(
        f"{region.split()[1]} " + " ".join(f"{n}={s:.0%}" for n, s in shares[region].items()) for region in REGIONS)
