#!/usr/bin/env python3
"""Benchmark: table generation at scale, and the GeoIP cost per query with and without the prefix cache.

Table: 200 mirrors; 250 country tables x 50 names, each name listing 8 mirrors; 7 continent tables x 50
names x 20 mirrors; a default table of 50 names x 50 mirrors. Prints the time to read and check the
configuration, the time and peak memory of one table generation (the work of every health cycle), and the
time to precompute every pool's wire-format answers (which the server does lazily, on first use).

    python bench/table_generation.py
"""
from __future__ import annotations

import ipaddress
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnsbalance.compiler.table import compiled  # noqa: E402
from dnsbalance.configuration.load import load_config  # noqa: E402
from dnsbalance.geo.countries import CONTINENTS, countries  # noqa: E402
from dnsbalance.geo.locate import GeoIP, builtin_database  # noqa: E402
from dnsbalance.ranking.build import build_table  # noqa: E402
from dnsbalance.health.view import HealthView  # noqa: E402

MIRRORS, COUNTRIES, NAMES, PER_NAME = 200, 250, 50, 8


def write(folder: Path, rng: random.Random) -> Path:
    (folder / "country").mkdir(parents=True)
    (folder / "continent").mkdir()
    (folder / "dnsbalance.yaml").write_text("zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n")
    (folder / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        f"  m{i}: {{addresses: [{ipaddress.IPv4Address(0xC6120000 + i)}, '2001:db8::{i:x}']}}\n"
        for i in range(MIRRORS)))

    def table(width: int) -> str:
        lines = []
        for n in range(NAMES):
            lines.append(f"name{n}:")
            lines += [f"  m{m}: {rng.randrange(0, 9999)}" for m in rng.sample(range(MIRRORS), width)]
        return "\n".join(lines) + "\n"

    codes = sorted({c.alpha2 for c in countries().values()})[:COUNTRIES]
    for code in codes:
        (folder / "country" / f"{code}.yaml").write_text(table(PER_NAME))
    for code in CONTINENTS:
        (folder / "continent" / f"{code}.yaml").write_text(table(20))
    (folder / "default.yaml").write_text(table(50))
    return folder


def geoip_cost() -> None:
    rng = random.Random(2)
    # Resolver-like traffic: 2,000 client networks, many queries from each.
    networks = [ipaddress.IPv4Address(rng.getrandbits(24) << 8) for _ in range(2000)]
    clients = [ipaddress.IPv4Address(int(rng.choice(networks)) + rng.randrange(256)) for _ in range(200_000)]
    cached = GeoIP(builtin_database())
    uncached = GeoIP(builtin_database())
    started = time.perf_counter()
    for address in clients:
        cached.locate(address)
    with_cache = (time.perf_counter() - started) / len(clients)
    started = time.perf_counter()
    for address in clients:
        uncached._lookup(address)
    without = (time.perf_counter() - started) / len(clients)
    print(f"GeoIP per query    {with_cache * 1e6:.2f} us with the prefix cache, {without * 1e6:.2f} us without "
          f"(ratio {without / with_cache:.1f}x; 200,000 lookups from 2,000 /24 networks)")


def main() -> int:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write(Path(tmp) / "config", rng)
        started = time.perf_counter()
        config = load_config(folder)
        loaded = time.perf_counter() - started
    entries = sum(len(e) for t in config.tables() for e in t.names.values())
    health = HealthView({f"m{i}": i % 10 != 0 for i in range(MIRRORS)})  # 10% down
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    table = build_table(config, health, 1, 1)
    built = time.perf_counter() - started
    del table
    tracemalloc.start()  # a second build under tracemalloc, which slows it: memory only
    table = build_table(config, health, 1, 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    started = time.perf_counter()
    pools = 0
    wire = compiled(table)  # values (ranking/variants.py) and their wire (compiler/answers.py)
    for tier in (*table.countries.values(), *table.continents.values(), table.default):
        for (_, rtype), pool in tier.usable.items():
            wire.answers(pool, rtype)
            pools += 1
    warmed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"configuration      {MIRRORS} mirrors, {len(config.countries)} countries x {NAMES} names x {PER_NAME}, "
          f"{len(config.continents)} continents, {entries} entries")
    print(f"read and check     {loaded:.2f} s (at start-up and on reload)")
    print(f"table generation   {built:.3f} s, peak {peak / 2**20:.1f} MiB allocated (each health cycle)")
    print(f"answer precompute  {warmed:.2f} s for all {pools} pools (done lazily, per pool on first query)")
    print(f"process peak RSS   {rss / 1024:.0f} MiB with every pool precomputed (before generation "
          f"{rss_before / 1024:.0f} MiB)")
    geoip_cost()
    return 0


if __name__ == "__main__":
    sys.exit(main())
