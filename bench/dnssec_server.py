#!/usr/bin/env python3
"""Benchmark: what DNSSEC costs the running server (issue 25, "Speed"), measured with dnsperf on sockets.

bench/dnssec.py times the answer functions without sockets; this runs the real servers, as
bench/cpu_per_query.py does (whose helpers it imports): each server on a free loopback port pinned to core 1,
dnsperf on core 0, the server's CPU (utime+stime of all its processes, from /proc) per answered query.

1. dnsbalance with `dnssec: {sign: true}` (the zone of bench/dns_throughput.py, its key made by
   `dnsbalance dnssec keygen`), the query mix of cpu_per_query.py (12 client subnets of 9 countries, ECS on
   every query, 90% the weighted name, 10% NXDOMAIN): the same wire queries with the DO bit and without it,
   in turns, on one server: CPU per query at `--rate` (default 40,000 q/s) and queries/s at full load.
2. A random-subdomain flood: `--names` (default 1,000,000) distinct random names under the zone
   (`<12 random letters and digits>.cdn.example.org A`, ECS from the same subnets in turn), with DO against
   the same names without DO (a plain NXDOMAIN flood): CPU per query at the rate and at full load. A window
   sends fewer queries than there are names, so no name repeats within a window.
3. PowerDNS's geoip backend (Debian's pdns-backend-geoip) answering the same zone with DNSSEC: its key made by
   `pdnsutil secure-zone` into `geoip-dnssec-keydir` (the geoip backend keeps its keys in files there, one
   ECDSAP256SHA256 CSK by default, as dnsbalance's), the same DO mix and DO flood: queries/s beside
   dnsbalance's. PowerDNS signs online (narrow NSEC3 "white lies" for negative answers, its signature cache
   for the rest), so its flood figures show a signing flood.

Each table row is one dnsperf window; "waited" is the share of the window the server's threads were runnable
but without a core (the machine is shared: high figures mean noise). Ratios are of the same run.

    python bench/dnssec_server.py [--seconds 10] [--rate 40000] [--names 1000000] [--rounds 1] [--skip pdns]

Needs dnsperf, taskset, and for part 3 pdns-server and pdns-backend-geoip (skipped and said so if missing).
"""
from __future__ import annotations

import argparse
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import dns.message  # noqa: E402
import dns.rdatatype  # noqa: E402

from cpu_per_query import (ANSWERED, MISSING, SUBNETS, Load, Window, dnsperf, process_tree, rate_label,  # noqa: E402
                           window)
from dns_throughput import ROOT, dnsbalance_config, free_port, pdns_config, stop, wait_answering  # noqa: E402

ZONE = "cdn.example.org"
DO = 0x8000  # the DO bit, in the OPT record's TTL field (RFC 3225)
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


# --- queries ---

def query(name: str, network: str, prefix: int, dnssec_ok: bool) -> bytes:
    """`name` A with EDNS (4096 bytes), one client subnet option, and the DO bit if asked: cpu_per_query.py's
    ecs_query with the flag (dnsperf rewrites the ID)."""
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\x00"
    address = bytes(int(octet) for octet in network.split("."))[:(prefix + 7) // 8]
    option = struct.pack("!HBB", 1, prefix, 0) + address
    opt = (b"\x00" + struct.pack("!HHIH", 41, 4096, DO if dnssec_ok else 0, 4 + len(option))
           + struct.pack("!HH", 8, len(option)) + option)
    return struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 1) + labels + struct.pack("!HH", 1, 1) + opt


def write(path: Path, messages: list[bytes]) -> Path:
    """A dnsperf `-B` file: each message after its 2-byte length."""
    path.write_bytes(b"".join(struct.pack("!H", len(m)) + m for m in messages))
    return path


def mix(folder: Path, dnssec_ok: bool) -> Path:
    names = [ANSWERED] * 9 + [MISSING]
    return write(folder / f"mix-{'do' if dnssec_ok else 'plain'}.bin",
                 [query(name, network, 24, dnssec_ok) for _, network in SUBNETS for name in names])


def random_names(count: int, seed: int = 25) -> list[str]:
    rng = random.Random(seed)
    names = {"".join(rng.choices(ALPHABET, k=12)) + "." + ZONE for _ in range(count)}
    return sorted(names, key=lambda _: rng.random())  # distinct, in random order


def flood(folder: Path, names: list[str], dnssec_ok: bool) -> Path:
    return write(folder / f"flood-{'do' if dnssec_ok else 'plain'}.bin",
                 [query(name, SUBNETS[i % len(SUBNETS)][1], 24, dnssec_ok) for i, name in enumerate(names)])


def signatures(port: int, data: Path) -> int:
    """RRSIG records in the reply to the first query of a `-B` file: a DO query must get some, else the
    figures would be of an unsigned zone."""
    size = struct.unpack("!H", data.read_bytes()[:2])[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(data.read_bytes()[2:2 + size], ("127.0.0.1", port))
        reply = dns.message.from_wire(sock.recv(65535))
    return sum(1 for section in (reply.answer, reply.authority) for rrset in section
               if rrset.rdtype == dns.rdatatype.RRSIG)


def resident_mb(leader: int) -> float:
    """Resident memory of the server's processes: a flood of distinct names must not grow it without bound."""
    total = 0
    for pid in process_tree(leader):
        try:
            total += int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                              if line.startswith("VmRSS:")))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


# --- servers ---

def dnsbalance_signed(folder: Path, port: int) -> list[str]:
    """dnsbalance_config's zone with `dnssec: {sign: true}` and a key from `dnsbalance dnssec keygen`."""
    command = dnsbalance_config(folder)
    config = folder / "config"
    yaml = config / "dnsbalance.yaml"
    yaml.write_text(yaml.read_text() + f"state_dir: {folder / 'state'}\ndnssec: {{sign: true}}\n")
    subprocess.run([sys.executable, "-m", "dnsbalance", "dnssec", "keygen", "--config", str(config)],
                   cwd=ROOT, check=True, capture_output=True)
    return command + ["--listen", f"127.0.0.1:{port}", "--status", "off"]


def pdns_signed(folder: Path, port: int) -> list[str]:
    """pdns_config's zone with the geoip backend's DNSSEC: keys in files under geoip-dnssec-keydir."""
    command = pdns_config(folder, port)
    base = folder / "pdns"
    keys = base / "keys"
    keys.mkdir(exist_ok=True)
    conf = base / "pdns.conf"
    conf.write_text(conf.read_text() + f"geoip-dnssec-keydir={keys}\n")
    made = subprocess.run(["pdnsutil", f"--config-dir={base}", "secure-zone", ZONE], capture_output=True, text=True)
    if made.returncode != 0 or not any(keys.iterdir()):
        raise RuntimeError(f"pdnsutil secure-zone failed: {(made.stdout + made.stderr).strip()[-300:]}")
    return command


@dataclass(frozen=True)
class Part:
    label: str
    data: Path


@dataclass
class Result:
    server: str
    windows: dict[str, list[Window]]  # part label -> [the rate's window, full load's]
    note: str = ""
    memory: list[str] | None = None  # resident MB after each part


def measure(server: str, make, cwd: Path, folder: Path, parts: list[Part], rate: int, seconds: float,
            clients: int) -> Result:
    port = free_port()
    home = folder / f"{server.split()[0]}-{port}"
    home.mkdir(parents=True)
    try:
        command = make(home, port)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        return Result(server, {}, f"could not be set up: {exc}")
    log = home / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(["taskset", "-c", "1", *command], cwd=cwd, stdout=subprocess.DEVNULL,
                                   stderr=stderr, start_new_session=True)
    try:
        wait_answering(port, process)
        windows: dict[str, list[Window]] = {}
        memory = [f"start {resident_mb(process.pid):.0f}"]
        for part in parts:
            signed = signatures(port, part.data)
            if (signed > 0) == ("no DO" in part.label):
                raise RuntimeError(f"{part.label}: the first reply has {signed} RRSIG records")
            load = Load(port, part.data, ["-B"], clients)
            if not part.label.startswith("flood"):
                dnsperf(load, 1, 2000)  # warm up: every query shape seen once (a flood has no shapes to learn)
            windows[part.label] = [window(process.pid, load, seconds, rate), window(process.pid, load, seconds, None)]
            memory.append(f"after {part.label} {resident_mb(process.pid):.0f}")
        return Result(server, windows, memory=memory)
    except (RuntimeError, OSError) as exc:
        return Result(server, {}, f"failed: {exc} {log.read_text(errors='replace').strip()[-300:]}")
    finally:
        stop(process)


# --- report ---

def rows(result: Result) -> list[str]:
    if result.note:
        return [f"{result.server:<16} {result.note}"]
    lines = []
    for label, windows in result.windows.items():
        for w in windows:
            mark = "  short of the rate" if w.short else ""
            mark += "  CLIENT-BOUND" if w.client_bound else ""
            lines.append(f"{result.server:<16} {label:<12} {rate_label(w.rate):>11} {w.qps:>11,.0f} "
                         f"{w.lost_percent:>6.2f}% {w.cpu_us:>8.2f} {w.busy:>6.0%} {w.wait_share:>7.0%} "
                         f"{w.client_busy:>8.0%}{mark}")
    return lines


def ratio(result: Result, top: str, bottom: str) -> str:
    a, b = result.windows.get(top), result.windows.get(bottom)
    if not a or not b:
        return "-"
    cpu = a[0].cpu_us / b[0].cpu_us if b[0].cpu_us else float("nan")
    qps = a[1].qps / b[1].qps if b[1].qps else float("nan")
    waited = max(w.wait_share for w in a + b)
    return (f"CPU/query at {rate_label(a[0].rate)} {cpu:.2f}x ({a[0].cpu_us:.2f} / {b[0].cpu_us:.2f} µs), "
            f"full-load q/s {qps:.2f}x ({a[1].qps:,.0f} / {b[1].qps:,.0f}); waited at most {waited:.0%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each dnsperf window (default 10)")
    parser.add_argument("--rate", type=int, default=40000, help="the fixed rate in q/s (default 40000)")
    parser.add_argument("--names", type=int, default=1_000_000, help="distinct random names in the flood")
    parser.add_argument("--clients", type=int, default=16, help="dnsperf client sockets")
    parser.add_argument("--skip", default="", help="pdns: leave PowerDNS out")
    args = parser.parse_args()
    if shutil.which("dnsperf") is None or shutil.which("taskset") is None:
        print("needs dnsperf and taskset (apt-get install dnsperf util-linux)")
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # so `finally` stops the servers on SIGTERM too
    with tempfile.TemporaryDirectory(prefix="dnsbalance-dnssec-") as tmp:
        folder = Path(tmp)
        names = random_names(args.names)
        mix_do, mix_plain = mix(folder, True), mix(folder, False)
        flood_do, flood_plain = flood(folder, names, True), flood(folder, names, False)
        print(f"mix: {len(SUBNETS)} client subnets /24, each 9x {ANSWERED} A and 1x NXDOMAIN, ECS on every query; "
              f"flood: {len(names):,} distinct random names under {ZONE}, ECS from the same subnets in turn")
        print(f"each window {args.seconds:g} s; server on core 1, dnsperf on core 0 (-c {args.clients}); "
              "CPU = utime+stime of the server's processes per answered query")
        ours = [Part("mix no DO", mix_plain), Part("mix DO", mix_do),
                Part("flood no DO", flood_plain), Part("flood DO", flood_do)]
        results = [measure("dnsbalance", dnsbalance_signed, ROOT, folder, ours, args.rate, args.seconds,
                           args.clients)]
        if "pdns" in args.skip.split(","):
            results.append(Result("PowerDNS geoip", {}, "skipped (--skip pdns)"))
        elif shutil.which("pdns_server") is None or shutil.which("pdnsutil") is None:
            results.append(Result("PowerDNS geoip", {}, "not installed (pdns-server, pdns-backend-geoip)"))
        else:
            theirs = [Part("mix no DO", mix_plain), Part("mix DO", mix_do), Part("flood DO", flood_do)]
            results.append(measure("PowerDNS geoip", pdns_signed, folder, folder, theirs, args.rate, args.seconds,
                                   args.clients))
        print(f"\n{'server':<16} {'queries':<12} {'offered':>11} {'answered/s':>11} {'lost':>7} {'µs/query':>8} "
              f"{'core':>6} {'waited':>7} {'dnsperf':>8}")
        for result in results:
            print("\n".join(rows(result)))
        for result in results:
            if result.memory:
                print(f"{result.server} resident MB: " + ", ".join(result.memory))
        dnsbalance, pdns = results
        print("\ndnsbalance, signed zone:")
        print(f"  DO / no DO, mix:                 {ratio(dnsbalance, 'mix DO', 'mix no DO')}   (target <= 1.2x)")
        print(f"  flood DO / flood no DO:          {ratio(dnsbalance, 'flood DO', 'flood no DO')}   "
              "(target <= 1.5x)")
        print(f"  flood DO / mix DO:               {ratio(dnsbalance, 'flood DO', 'mix DO')}")
        if pdns.windows:
            print("PowerDNS geoip, signed zone:")
            print(f"  DO / no DO, mix:                 {ratio(pdns, 'mix DO', 'mix no DO')}")
            print(f"  flood DO / mix DO:               {ratio(pdns, 'flood DO', 'mix DO')}")
            print("dnsbalance / PowerDNS geoip (full-load q/s with DO; CPU/query at the rate):")
            for label in ("mix DO", "flood DO"):
                a, b = dnsbalance.windows[label], pdns.windows[label]
                print(f"  {label:<10} q/s {a[1].qps:,.0f} / {b[1].qps:,.0f} = {a[1].qps / b[1].qps:.2f}x; "
                      f"CPU/query {a[0].cpu_us:.2f} / {b[0].cpu_us:.2f} µs = {a[0].cpu_us / b[0].cpu_us:.2f}x")
        else:
            print(f"PowerDNS geoip: {pdns.note}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
