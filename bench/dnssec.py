#!/usr/bin/env python3
"""Benchmark: DNSSEC signing in the table build (issue 25), on the big configuration of
bench/table_generation.py (200 mirrors, 250 countries x 50 names x 8 mirrors, continents, default).

Prints: a full build (table, every pool's answers) without and with signing, and their ratio; how many
signatures the signed build made; after one mirror flaps, how many the rebuild signs (only the changed sets);
and the answer path's cost of a DO query against the same query without DO: respond() (the full path), and what
answerers run (the fast path where it takes the query), for an A answer and for a random-subdomain NXDOMAIN.

    python bench/dnssec.py [--names N]
"""
from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.message
from dnslib import DNSRecord

import bench.table_generation as big
from dnsbalance.answer.fastpath import FastPath
from dnsbalance.answer.respond import respond
from dnsbalance.compiler.table import compiled
from dnsbalance.configuration.load import load_config
from dnsbalance.configuration.model import Algorithm, DNSSECSettings
from dnsbalance.dnssec.keys import keygen
from dnsbalance.dnssec.signer import Signer, signing_threads, window_at
from dnsbalance.geo.locate import Location
from dnsbalance.ranking.build import build_table
from dnsbalance.health.view import HealthView
from dnsbalance.serving.collector import collector_paused


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=big.NAMES)
    parser.add_argument("--rounds", type=int, default=3, help="builds of each kind, interleaved; the best is shown")
    parser.add_argument("--threads", type=int, default=0, help="signing threads (default: one per core)")
    args = parser.parse_args()
    big.NAMES = args.names
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(big.write(Path(tmp) / "config", random.Random(1)))
        key = keygen(Path(tmp) / "keys", Algorithm.ECDSAP256SHA256)
    health = HealthView({f"m{i}": i % 10 != 0 for i in range(big.MIRRORS)})
    settings = DNSSECSettings(sign=True)

    kept: list[tuple[object, Signer, object]] = []  # the last signed build, for the rebuild below

    def build(threads: int | None) -> tuple[float, float]:
        """A full build as the server makes one (serving/balancer.py: the collector paused): the table, then
        without signing every pool's answers (precompute), with `threads` signing threads the signatures, every
        pool's answers compiled on the way (the signing threads sign beside the compiling). CPU time of every
        thread, and wall time."""
        kept.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        with collector_paused():
            table = build_table(config, health, 1, 1)
            if threads is None:
                compiled(table).precompute()
            else:
                signer = Signer(key, config.settings.zone, window_at(time.time(), settings), threads=threads)
                kept.append((table, signer, compiled(table).sign(signer)))
        return time.process_time() - cpu, time.perf_counter() - wall

    print(f"configuration        {big.MIRRORS} mirrors, {len(config.countries)} countries x {big.NAMES} names")
    threads = args.threads or signing_threads()
    rows = []
    for _ in range(args.rounds):  # interleaved, so that the machine's noise falls on each alike
        rows.append((build(None), build(threads) if threads > 1 else None, build(1)))
    for label, at in (("CPU", 0), ("wall", 1)):
        unsigned = min(r[0][at] for r in rows)
        print(f"build without DNSSEC {unsigned:.2f} s {label} (table and every pool's answers; best of {len(rows)})")
        for name, column in (("1 signing thread", 2), (f"{threads} signing threads", 1)):
            if rows[0][column] is None:
                continue
            figure = min(r[column][at] for r in rows)
            print(f"build with signing   {figure:.2f} s {label}, {name} -> {figure / unsigned:.2f}x")
    table, signer, signatures = kept[0]
    print(f"signatures           {signatures.made} made ({len(signatures.by_content)} RRsets) in "
          f"{signatures.seconds:.2f} s of the signing threads' time ({signatures.engine})")

    # One mirror flaps: the rebuild as the server makes it (the pools' answers inherited from the table before,
    # its signed sets taken whole where the pool is the same), without and with signing.
    flapped = HealthView({**health.usable, "m1": not health.usable["m1"]})
    with collector_paused():
        started = time.process_time()
        plain_after = build_table(config, flapped, 2, 2)
        compiled(plain_after).precompute(compiled(table))
        plain_rebuild = time.process_time() - started
        del plain_after
        started = time.process_time()
        after = build_table(config, flapped, 2, 2)
        again = signer.next(time.time(), settings)
        resigned = compiled(after).sign(again, compiled(table))
        rebuild = time.process_time() - started
    print(f"one mirror flaps     rebuild {plain_rebuild:.2f} s CPU without DNSSEC, {rebuild:.2f} s with signing "
          f"-> {rebuild / plain_rebuild:.2f}x; {resigned.made} signatures made "
          f"({resigned.made / max(1, len(resigned.by_content)):.1%} of {len(resigned.by_content)} RRsets; "
          f"the SOA's among them, its serial changed)")

    # Answering as an answerer does: the tables built so far moved out of the collector's sight, as the supervisor
    # does before it forks one (gc.freeze): without it, collections walking the big tables dominate each query.
    gc.collect()
    gc.freeze()
    location = Location("JP", "AS", 0)
    rng = random.Random(1)
    for do in (False, True):
        packet = dns.message.make_query(f"name1.{config.settings.zone}", "A", want_dnssec=do).to_wire()
        query = DNSRecord.parse(packet)
        started = time.process_time()
        rounds = 20000
        for _ in range(rounds):
            respond(query, location, after, rng, packet=packet)
        per = (time.process_time() - started) / rounds
        if not do:
            base = per
        print(f"respond() {'DO   ' if do else 'no DO'}     {per * 1e6:.1f} us per query" +
              (f" -> {per / base:.2f}x" if do else ""))

    # What answerers run for the common query: the fast path (a weighted pick and a join), DO or not; and a
    # random-subdomain flood, whose DO queries (NSECs) the full path answers from the presigned chain.
    fast = FastPath(compiled(after), ecs=False)
    locate = lambda client, subnet: (location, None)  # noqa: E731
    for label, names, rounds in (("A answer", lambda i: "name1", 100000), ("NXDOMAIN", lambda i: f"x{i}", 20000)):
        base = 0.0
        for do in (False, True):
            packets = [dns.message.make_query(f"{names(i)}.{config.settings.zone}", "A", want_dnssec=do).to_wire()
                       for i in range(rounds)]
            started = time.process_time()
            for packet in packets:
                if fast.answer(packet, "127.0.0.1", locate, rng) is None:
                    respond(DNSRecord.parse(packet), location, after, rng, packet=packet)
            per = (time.process_time() - started) / rounds
            base = base or per
            print(f"answer {label:9} {'DO   ' if do else 'no DO'} {per * 1e6:.1f} us per query (fast path where it "
                  f"takes it)" + (f" -> {per / base:.2f}x" if do else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
