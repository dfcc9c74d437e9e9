#!/usr/bin/env python3
"""Figures: first-address shares at clients behind a real unbound, for one or more dnsbalance trees.

For each tree (a checkout of dnsbalance; default this one) a server answers the test zone with
`answers: 4` and the JP names deb (weights 9000/6000/3000/1000), web (60/25/10/5) and last
(9900/1000/100); a real unbound (subnetcache: every client /24 its own ECS) sits in front, with
rrset-roundrobin yes and no; CLIENTS clients on distinct loopback /24s ask once each. Printed: each
mirror's configured share next to the share of first addresses each tree delivered, and the mean answer
size. Loopback only. Needs the Debian package unbound.

    python bench/resolver_shares.py [--clients 2000] [--min-answers 1] [LABEL=TREE ...]
    python bench/resolver_shares.py before=/work/baseline after=.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import FIXTURES  # noqa: E402
from tests.unbound import ask_through, client_addresses, resolver_zone, start_unbound, write_client_mmdb  # noqa: E402

NAMES = {
    "deb": {"192.0.2.1": 9000, "192.0.2.2": 6000, "192.0.2.3": 3000, "192.0.2.4": 1000},
    "web": {"192.0.2.1": 6000, "192.0.2.2": 2500, "192.0.2.3": 1000, "192.0.2.4": 500},
    "last": {"192.0.2.1": 9900, "192.0.2.2": 1000, "192.0.2.3": 100},
}


def start(tree: Path, config: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    """`python -m dnsbalance serve` from `tree`, read-only (no bytecode written), on a free port."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tree)}
    log = log_path.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config),
                                "--listen", "127.0.0.1:0", "--status", "off"],
                               stdout=log, stderr=subprocess.STDOUT, cwd=tree, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"on 127\.0\.0\.1:(\d+) \(udp, tcp\)", log_path.read_text(errors="replace"))
        if found:
            return process, int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{tree}: server did not start:\n{log_path.read_text(errors='replace')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--min-answers", type=int, default=1)
    parser.add_argument("trees", nargs="*", default=[f"this={ROOT}"], metavar="LABEL=TREE")
    args = parser.parse_args()
    clients = client_addresses(args.clients)
    results: dict[tuple[str, bool, str], tuple[dict[str, float], float]] = {}
    labels = []
    with tempfile.TemporaryDirectory(prefix="resolver-shares-") as scratch:
        base = Path(scratch)
        mmdb = write_client_mmdb(base / "clients.mmdb", clients)
        for item in args.trees:
            label, _, tree = item.partition("=")
            labels.append(label)
            config = resolver_zone(base / label / "config", mmdb, FIXTURES / "zone", 4, args.min_answers)
            process, port = start(Path(tree).resolve(), config, base / label / "server.log")
            try:
                for roundrobin in (True, False):
                    resolver = start_unbound(base / label / f"unbound-{roundrobin}", port, roundrobin)
                    try:
                        for name in NAMES:
                            seen = ask_through(resolver.port, clients, name)
                            shares = {a: n / args.clients for a, n in seen.firsts.items()}
                            size = sum(k * n for k, n in seen.sizes.items()) / args.clients
                            results[(label, roundrobin, name)] = (shares, size)
                    finally:
                        resolver.stop()
            finally:
                process.terminate()
                process.wait(timeout=10)
    for roundrobin in (True, False):
        print(f"\nunbound rrset-roundrobin: {'yes' if roundrobin else 'no'}, {args.clients} clients, "
              f"answers: 4, min_answers: {args.min_answers}")
        print(f"  {'name':<5} {'address':<10} {'weight':>7}" + "".join(f" {label:>9}" for label in labels))
        for name, weights in NAMES.items():
            total = sum(weights.values())
            for address, weight in weights.items():
                cells = "".join(f" {100 * results[(label, roundrobin, name)][0].get(address, 0.0):8.1f}%"
                                for label in labels)
                print(f"  {name:<5} {address:<10} {100 * weight / total:6.1f}%{cells}")
            sizes = "".join(f" {results[(label, roundrobin, name)][1]:9.2f}" for label in labels)
            print(f"  {name:<5} {'mean size':<10} {'':>7}{sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
