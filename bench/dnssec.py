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
from dnsbalance.dnssec.signer import Signer, window_at
from dnsbalance.geo.locate import Location
from dnsbalance.ranking.build import build_table
from dnsbalance.health.view import HealthView


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=big.NAMES)
    args = parser.parse_args()
    big.NAMES = args.names
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(big.write(Path(tmp) / "config", random.Random(1)))
        key = keygen(Path(tmp) / "keys", Algorithm.ECDSAP256SHA256)
    health = HealthView({f"m{i}": i % 10 != 0 for i in range(big.MIRRORS)})
    settings = DNSSECSettings(sign=True)

    started = time.process_time()
    plain = build_table(config, health, 1, 1)
    compiled(plain).precompute()
    unsigned = time.process_time() - started

    started = time.process_time()
    table = build_table(config, health, 1, 1)
    compiled(table).precompute()
    signer = Signer(key, config.settings.zone, window_at(time.time(), settings))
    signatures = compiled(table).sign(signer)
    signed = time.process_time() - started
    print(f"configuration        {big.MIRRORS} mirrors, {len(config.countries)} countries x {big.NAMES} names")
    print(f"build without DNSSEC {unsigned:.2f} s (table and every pool's answers)")
    print(f"build with signing   {signed:.2f} s: {signatures.made} signatures made in {signatures.seconds:.2f} s "
          f"({len(signatures.by_content)} RRsets) -> {signed / unsigned:.2f}x")

    flapped = HealthView({**health.usable, "m1": not health.usable["m1"]})
    started = time.process_time()
    after = build_table(config, flapped, 2, 2)
    compiled(after).precompute(compiled(table))
    again = signer.next(time.time(), settings)
    resigned = compiled(after).sign(again)
    print(f"one mirror flaps     rebuild {time.process_time() - started:.2f} s, {resigned.made} signatures made "
          f"({resigned.made / max(1, len(resigned.by_content)):.1%} of {len(resigned.by_content)} RRsets; "
          f"the SOA's among them, its serial changed)")

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
