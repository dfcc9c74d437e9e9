#!/usr/bin/env python3
"""Benchmark: dnsbalance against gdnsd (geoip + weighted) and PowerDNS (geoip backend), in one run.

Each server answers an equivalent zone (cdn.example.org; `deb` drawn by weight from per-country, continent and
default tables; the same built-in GeoIP database) on a free loopback port, pinned to core 0; dnsperf runs on
core 1. The query mix is 90% answered names and 10% NXDOMAIN, every query carrying an EDNS Client Subnet
of a Japanese network, so GeoIP and the weighted draw are on the path. For each server: queries/s at full
load, then p50/p99 latency at a fixed 3,000 queries/s. Needs the Debian packages dnsperf, gdnsd,
pdns-server and pdns-backend-geoip; a server whose program is missing is skipped and said so.

    python bench/dns_throughput.py [--seconds 10] [--rounds 3] [--skip gdnsd,pdns] [--baseline DIR]

`--baseline DIR` adds a second dnsbalance run from another checkout (e.g. `git worktree add DIR REV`), in the
same interleaved rounds: a before/after comparison on a shared, noisy machine.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dnsbalance.geo.locate import builtin_database  # noqa: E402

# The JP table: priority -> weight = 10000 - priority, as dnsbalance counts it.
JP = {"jp1": ("192.0.2.1", 20), "jp2": ("192.0.2.2", 10), "jp3": ("192.0.2.3", 5000), "jp4": ("192.0.2.4", 9900)}
AS = {"as1": ("192.0.2.11", 10), "as2": ("192.0.2.12", 500)}
DEFAULT = {"d1": ("198.51.100.1", 5000), "d2": ("198.51.100.2", 5000), "d3": ("203.0.113.1", 7000)}
ECS_JP = "8:000110008510"  # EDNS option 8: family 1, /16, scope 0, 133.16 (a Japanese network)


def free_port() -> int:
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def wait_answering(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    query = bytes.fromhex("abcd01000001000000000000") + b"\x03deb\x03cdn\x07example\x03org\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode}")
            sock.sendto(query, ("127.0.0.1", port))
            try:
                if sock.recv(512)[3] & 0xF == 0:
                    return
            except socket.timeout:
                continue
    raise RuntimeError("did not answer")


def dnsbalance_config(folder: Path) -> list[str]:
    config = folder / "config"
    (config / "country").mkdir(parents=True, exist_ok=True)
    (config / "continent").mkdir(exist_ok=True)
    (config / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n"
        "soa: {rname: hostmaster.example.org}\nhealth: {enabled: false}\n")
    mirrors = {**JP, **AS, **DEFAULT}
    (config / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        f"  {name}: {{addresses: [{address}]}}\n" for name, (address, _) in mirrors.items()))

    def table(entries: dict[str, tuple[str, int]]) -> str:
        return "deb:\n" + "".join(f"  {name}: {priority}\n" for name, (_, priority) in entries.items())

    (config / "country" / "JP.yaml").write_text(table(JP))
    (config / "continent" / "AS.yaml").write_text(table(AS))
    (config / "default.yaml").write_text(table(DEFAULT))
    return [sys.executable, "-m", "dnsbalance", "serve", "--config", str(config), "--log-level", "WARNING"]


def gdnsd_config(folder: Path, port: int) -> list[str]:
    base = folder / "gdnsd"
    (base / "zones").mkdir(parents=True, exist_ok=True)

    def weighted(entries: dict[str, tuple[str, int]]) -> str:
        return "{ " + " ".join(f"{n} = [ {a}, {10000 - p} ]" for n, (a, p) in entries.items()) + " }"

    (base / "config").write_text(f"""options => {{
  listen => [ 127.0.0.1 ]
  dns_port => {port}
  udp_threads => 1
  tcp_threads => 1
}}
plugins => {{
  weighted => {{
    multi => true
    deb_jp => {weighted(JP)}
    deb_as => {weighted(AS)}
    deb_def => {weighted(DEFAULT)}
  }}
  geoip => {{
    maps => {{
      regions => {{
        geoip2_db => {builtin_database()}
        datacenters => [ def, as, jp ]
        map => {{ AS => {{ JP => [ jp ], CN => [ as ], KR => [ as ] }} }}
      }}
    }}
    resources => {{
      deb => {{ map => regions, dcmap => {{ jp => %weighted!deb_jp, as => %weighted!deb_as, def => %weighted!deb_def }} }}
    }}
  }}
}}
""")
    (base / "zones" / "cdn.example.org").write_text(
        "@ 3600 SOA ns1 hostmaster.example.org. 1 3600 600 604800 60\n@ 3600 NS ns1\nns1 3600 A 192.0.2.53\n"
        "deb 60 DYNA geoip!deb\n")
    return ["gdnsd", "-c", str(base), "start"]


def pdns_config(folder: Path, port: int) -> list[str]:
    base = folder / "pdns"
    base.mkdir(parents=True, exist_ok=True)

    def records(name: str, entries: dict[str, tuple[str, int]]) -> str:
        return f"    {name}:\n" + "".join(f"      - a: {{content: {a}, weight: {10000 - p}}}\n"
                                          for _, (a, p) in entries.items())

    (base / "zones.yaml").write_text(
        "domains:\n- domain: cdn.example.org\n  ttl: 60\n  records:\n"
        "    cdn.example.org:\n      - soa: ns1.cdn.example.org hostmaster.example.org 1 3600 600 604800 60\n"
        "      - ns: ns1.cdn.example.org\n"
        "    ns1.cdn.example.org:\n      - a: 192.0.2.53\n"
        + records("jp.deb.cdn.example.org", JP) + records("as.deb.cdn.example.org", AS)
        + records("default.deb.cdn.example.org", DEFAULT)
        + "  services:\n    deb.cdn.example.org: [ '%cc.deb.cdn.example.org', '%cn.deb.cdn.example.org', "
          "'default.deb.cdn.example.org' ]\n")
    (base / "pdns.conf").write_text(
        f"launch=geoip\ngeoip-database-files=mmdb:{builtin_database()}\ngeoip-zones-file={base / 'zones.yaml'}\n"
        f"local-address=127.0.0.1\nlocal-port={port}\nedns-subnet-processing=yes\ndaemon=no\nguardian=no\n"
        f"socket-dir={base}\nreceiver-threads=1\ndistributor-threads=1\nsecurity-poll-suffix=\n"
        "disable-syslog=yes\nloglevel=3\n")
    return ["pdns_server", f"--config-dir={base}"]


@dataclass
class Result:
    name: str
    qps: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    lost: str = ""
    note: str = ""


def queries(folder: Path) -> Path:
    path = folder / "queries"
    lines = ["deb.cdn.example.org A"] * 9 + ["nosuch.cdn.example.org A"]
    path.write_text("\n".join(lines) + "\n")
    return path


def dnsperf(port: int, data: Path, seconds: int, rate: int | None, stats: bool) -> str:
    command = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data),
               "-l", str(seconds), "-c", "4", "-E", ECS_JP]
    command += ["-Q", str(rate)] if rate else ["-q", "500"]
    if stats:
        command += ["-v"]
    return subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout


def latencies(verbose: str) -> tuple[float, float]:
    """p50 and p99 in milliseconds from dnsperf -v lines (`> NOERROR deb... A 0.000123`)."""
    values = sorted(float(m.group(1)) for m in re.finditer(r"^> \S+ .* (\d+\.\d+)$", verbose, re.MULTILINE))
    if not values:
        return 0.0, 0.0
    return values[len(values) // 2] * 1000, values[min(len(values) - 1, int(len(values) * 0.99))] * 1000


def measure(name: str, command: list[str], port: int, data: Path, seconds: int, cwd: Path,
            latency: bool = True) -> Result:
    if shutil.which(command[0]) is None and command[0] != sys.executable:
        return Result(name, note=f"{command[0]} not installed")
    process = subprocess.Popen(["taskset", "-c", "0", *command], cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_answering(port, process)
        full = dnsperf(port, data, seconds, None, False)
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", full).group(1))
        lost = re.search(r"Queries lost:\s+(\S+ \S+)", full).group(1)
        p50, p99 = latencies(dnsperf(port, data, min(seconds, 5), 3000, True)) if latency else (0.0, 0.0)
        return Result(name, qps, p50, p99, lost)
    except (RuntimeError, AttributeError) as exc:
        stderr = process.stderr.read().decode(errors="replace")[-600:] if process.poll() is not None else ""
        return Result(name, note=f"failed: {exc} {stderr.strip()[:300]}")
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """The server's whole session: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--skip", default="", help="comma-separated: gdnsd, pdns")
    parser.add_argument("--baseline", type=Path, help="also run dnsbalance from this checkout (before/after)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; queries/s is each server's median (the machine is shared)")
    args = parser.parse_args()
    if shutil.which("dnsperf") is None:
        print("dnsperf is not installed (apt-get install dnsperf)")
        return 1
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="dnsbalance-bench-") as tmp:
        folder = Path(tmp)
        data = queries(folder)
        servers: list[tuple[str, Callable[[int], list[str]], Path]] = [
            ("dnsbalance", lambda port: dnsbalance_config(folder / f"db{port}") + [
                "--listen", f"127.0.0.1:{port}", "--status", "off"], ROOT)]
        if args.baseline is not None:
            servers.append(("dnsbalance@base", lambda port: dnsbalance_config(folder / f"b{port}") + [
                "--listen", f"127.0.0.1:{port}", "--status", "off"], args.baseline.resolve()))
        if "gdnsd" not in skip:
            servers.append(("gdnsd", lambda port: gdnsd_config(folder / f"g{port}", port), folder))
        if "pdns" not in skip:
            servers.append(("PowerDNS geoip", lambda port: pdns_config(folder / f"p{port}", port), folder))
        rounds: dict[str, list[Result]] = {name: [] for name, _, _ in servers}
        for index in range(args.rounds):
            for name, make, cwd in servers:
                port = free_port()
                rounds[name].append(measure(name, make(port), port, data, args.seconds, cwd, latency=index == 0))
        results = []
        for name, found in rounds.items():
            good = sorted((r for r in found if not r.note), key=lambda r: r.qps)
            if not good:
                results.append(found[0])
                continue
            median = good[len(good) // 2]
            first = found[0]
            results.append(Result(name, median.qps, first.p50, first.p99, median.lost,
                                  note="" if len(good) == len(found) else f"{len(found) - len(good)} round(s) failed"))
            print(f"{name}: " + ", ".join(f"{r.qps:.0f}" for r in found if not r.note) + " q/s by round")

    print(f"{'server':<16} {'queries/s':>10} {'lost':>12} {'p50 ms':>8} {'p99 ms':>8}   (p50/p99 at 3,000 q/s)")
    for r in results:
        if r.note and not r.qps:
            print(f"{r.name:<16} {r.note}")
        else:
            print(f"{r.name:<16} {r.qps:>10.0f} {r.lost:>12} {r.p50:>8.3f} {r.p99:>8.3f}")
    ours = results[0].qps
    for r in results[1:]:
        if r.qps:
            print(f"dnsbalance / {r.name}: {ours / r.qps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
