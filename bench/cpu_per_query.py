#!/usr/bin/env python3
"""Benchmark: the server's own CPU time per answered query, for dnsbalance, gdnsd and PowerDNS, in one run.

Full-load queries/s on a 2-core machine is capped by dnsperf as much as by the server, so the fair figure is
the CPU the server spends per answered query at fixed rates below saturation. Each server (the equivalent
zones of bench/dns_throughput.py: GeoIP + weighted draw, the built-in GeoIP database) runs on a free loopback
port pinned to core 1; dnsperf runs on core 0 and sends, for a fixed window each:

- fixed rates (`dnsperf -Q RATE -l SECONDS`, default 10k, 40k, 80k q/s): the server's utime+stime, summed over
  every process of its tree (its session and descendants: dnsbalance's workers, any helper process) from
  /proc/PID/stat before and after the window, divided by the queries dnsperf reports answered;
- full load (`-q 500` outstanding): queries/s, and CPU per query there too;
- "server core": the share of one core the server's processes used in the window; "waited": the time its
  threads were runnable but waiting for a core, summed over threads, as a share of the window (other programs
  in the way: figures taken with much waiting are noisy); "by process": how the CPU split over its processes
  (with `--workers`, how SO_REUSEPORT spread the queries); "dnsperf": the share of its own core dnsperf used,
  and "CLIENT-BOUND" when it is 95% or more (the load generator set the pace: never quote such a full-load
  figure as the server's); "short of the rate": fewer than 98% of the offered
  queries/s were answered (the server or dnsperf could not keep up: CPU per query there is a full-load figure);
- p50/p99 latency at 3,000 q/s (from `dnsperf -v`).

The query mix (`--mix world`, the default): 12 client subnets (/24) from 9 countries, JP (its own table), CN
and KR (the Asia table) and US, ES, AU, ZA, CO, UA (the default table); per subnet 9 queries for the weighted
name and 1 for a name that does not exist (NXDOMAIN); every query carries EDNS Client Subnet. The queries are
written in wire format (`dnsperf -B`), so each carries its own subnet. `--mix jp` sends the mix of
bench/dns_throughput.py instead (one Japanese /16).

Then, unless `--no-workers`, dnsbalance again with `--workers 1` and `--workers 2`, not pinned (it may use both
cores, which dnsperf, still on core 0, shares), for how the worker processes scale.

    python bench/cpu_per_query.py [--seconds 10] [--rates 10000,40000,80000] [--rounds 1] [--skip gdnsd,pdns]
                                  [--mix world|jp] [--no-workers] [--baseline DIR] [--python-path]

`--python-path` adds dnsbalance with DNSBALANCE_NATIVE=0 (the pure-Python fast path) beside the native one.

Needs the Debian packages dnsperf, gdnsd, pdns-server and pdns-backend-geoip (a missing server is skipped and
said so). dnsbalance runs under the interpreter that runs this script.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from dns_throughput import (  # noqa: E402
    ECS_JP,
    ROOT,
    dnsbalance_config,
    free_port,
    gdnsd_config,
    latencies,
    pdns_config,
    stop,
    wait_answering,
)

SERVER_CORE = "1"
CLIENT_CORE = "0"
ALL_CORES = "0,1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CLIENT_BOUND = 0.95  # dnsperf busy this share of its core or more: the window measured the client, not the server

# Client networks and the country the built-in database gives them. Only countries whose table is the same in
# the three configurations: gdnsd's map names JP, CN and KR in Asia, so other Asian countries would differ.
SUBNETS = [("JP", "133.16.0.0"), ("JP", "27.0.0.0"), ("JP", "211.0.0.0"), ("CN", "202.96.0.0"),
           ("CN", "36.0.0.0"), ("KR", "1.208.0.0"), ("US", "8.8.8.0"), ("ES", "81.0.0.0"), ("AU", "1.1.1.0"),
           ("ZA", "41.0.0.0"), ("CO", "200.0.0.0"), ("UA", "5.1.0.0")]
ANSWERED, MISSING = "deb.cdn.example.org", "nosuch.cdn.example.org"


# --- the server's CPU time, from /proc ---

def proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, session id, CPU ticks) of one process, or None if it is gone.

    The ticks are utime + stime of the whole process, exited threads included, plus cutime + cstime: the
    children it has reaped, so a worker that ends inside a window still counts."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    ppid, session = int(fields[1]), int(fields[3])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ppid, session, utime + stime + cutime + cstime


def process_tree(leader: int) -> dict[int, int]:
    """CPU ticks of every process in `leader`'s session or descending from it, by pid."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    members = {pid for pid, (_, session, _) in stats.items() if session == leader or pid == leader}
    grew = True
    while grew:  # descendants that left the session (setsid) still count
        found = {pid for pid, (ppid, _, _) in stats.items() if ppid in members} - members
        grew = bool(found)
        members |= found
    return {pid: stats[pid][2] for pid in members}


def run_queue_wait(pids: list[int]) -> float:
    """Seconds the threads of these processes spent runnable but waiting for a core (schedstat's second field):
    how much other programs on the machine got in the server's way. Threads that exited are not counted."""
    waited = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                waited += int(stat.read_text().split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return waited / 1e9


# --- queries and dnsperf ---

def ecs_query(name: str, network: str, prefix: int) -> bytes:
    """A query for `name` A with EDNS (4096 bytes) and one client subnet option: dnsperf rewrites the ID."""
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\x00"
    address = bytes(int(octet) for octet in network.split("."))[:(prefix + 7) // 8]
    option = struct.pack("!HBB", 1, prefix, 0) + address
    opt = b"\x00" + struct.pack("!HHIH", 41, 4096, 0, 4 + len(option)) + struct.pack("!HH", 8, len(option)) + option
    return struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 1) + labels + struct.pack("!HH", 1, 1) + opt


def write_queries(folder: Path, mix: str) -> tuple[Path, list[str]]:
    """The query file and dnsperf's options for it."""
    if mix == "jp":
        path = folder / "queries.txt"
        path.write_text("\n".join([f"{ANSWERED} A"] * 9 + [f"{MISSING} A"]) + "\n")
        return path, ["-E", ECS_JP]
    path = folder / "queries.bin"
    messages = [ecs_query(name, network, 24) for _, network in SUBNETS for name in [ANSWERED] * 9 + [MISSING]]
    path.write_bytes(b"".join(struct.pack("!H", len(m)) + m for m in messages))
    return path, ["-B"]


@dataclass(frozen=True)
class Load:
    port: int
    data: Path
    options: list[str]
    clients: int


def dnsperf_command(load: Load, seconds: float, rate: int | None, verbose: bool = False) -> list[str]:
    command = ["taskset", "-c", CLIENT_CORE, "dnsperf", "-s", "127.0.0.1", "-p", str(load.port),
               "-d", str(load.data), "-l", str(seconds), "-c", str(load.clients), *load.options]
    command += ["-Q", str(rate), "-q", "1000"] if rate else ["-q", "500"]
    return command + (["-v"] if verbose else [])


def dnsperf(load: Load, seconds: float, rate: int | None, verbose: bool = False) -> str:
    return subprocess.run(dnsperf_command(load, seconds, rate, verbose), capture_output=True, text=True,
                          timeout=seconds + 60).stdout


def dnsperf_sampled(load: Load, seconds: float, rate: int | None) -> tuple[str, float]:
    """dnsperf's output, and the CPU seconds it used during its run (read from /proc as the run ends: after it,
    dnsperf spins while it waits out late replies, which says nothing about whether it kept up)."""
    process = subprocess.Popen(dnsperf_command(load, seconds, rate), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    time.sleep(seconds)
    sampled = proc_stat(process.pid)
    output, _ = process.communicate(timeout=60)
    return output, (sampled[2] / CLOCK_TICKS if sampled else 0.0)


@dataclass(frozen=True)
class Window:
    """One dnsperf window: what dnsperf counted and the CPU the server's processes used meanwhile."""
    rate: int | None  # None: full load
    answered: int
    lost_percent: float
    run_time: float
    cpu: float  # seconds
    waited: float  # seconds runnable but without a core
    ticks_by_process: tuple[int, ...] = ()  # largest first: how the work spread over workers
    client_cpu: float = 0.0  # seconds of CPU dnsperf itself used during its run

    @property
    def spread(self) -> str:
        total = sum(self.ticks_by_process)
        if len(self.ticks_by_process) < 2 or not total:
            return ""
        return " / ".join(f"{t / total:.0%}" for t in self.ticks_by_process)

    @property
    def qps(self) -> float:
        return self.answered / self.run_time if self.run_time else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.answered * 1e6 if self.answered else 0.0

    @property
    def busy(self) -> float:
        """Share of one core the server used."""
        return self.cpu / self.run_time if self.run_time else 0.0

    @property
    def wait_share(self) -> float:
        return self.waited / self.run_time if self.run_time else 0.0

    @property
    def client_busy(self) -> float:
        """Share of its core dnsperf used: near 100%, the load generator and not the server set the pace."""
        return self.client_cpu / self.run_time if self.run_time else 0.0

    @property
    def client_bound(self) -> bool:
        return self.client_busy >= CLIENT_BOUND

    @property
    def short(self) -> bool:
        return self.rate is not None and self.qps < 0.98 * self.rate


def statistic(output: str, label: str) -> str:
    found = re.search(rf"{label}:\s+(\S+)", output)
    if found is None:
        raise RuntimeError(f"dnsperf printed no '{label}': {output[-300:]!r}")
    return found.group(1)


def window(leader: int, load: Load, seconds: float, rate: int | None) -> Window:
    before = process_tree(leader)
    waited = run_queue_wait(list(before))
    output, client_cpu = dnsperf_sampled(load, seconds, rate)
    after = process_tree(leader)
    waited = run_queue_wait(list(after)) - waited
    ticks = sum(after.values()) - sum(before.values())
    lost = re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", output)
    return Window(rate, int(statistic(output, "Queries completed")), float(lost.group(1)) if lost else 100.0,
                  float(statistic(output, r"Run time \(s\)")), ticks / CLOCK_TICKS, waited,
                  tuple(sorted((after[pid] - before.get(pid, 0) for pid in after), reverse=True)),
                  client_cpu)


# --- servers ---

@dataclass(frozen=True)
class Server:
    name: str
    program: str
    make: Callable[[Path, int], list[str]]  # (folder, port) -> command
    cwd: Path
    cores: str = SERVER_CORE
    env: dict[str, str] | None = None  # added to the environment (DNSBALANCE_NATIVE=0: the Python fast path)


@dataclass
class Measured:
    windows: list[Window]
    p50: float = 0.0
    p99: float = 0.0
    note: str = ""


def dnsbalance(workers: int | None = None) -> Callable[[Path, int], list[str]]:
    def make(folder: Path, port: int) -> list[str]:
        command = dnsbalance_config(folder) + ["--listen", f"127.0.0.1:{port}", "--status", "off"]
        return command + (["--workers", str(workers)] if workers else [])
    return make


def servers(folder: Path, skip: set[str], baseline: Path | None = None, python_path: bool = False) -> list[Server]:
    found = [Server("dnsbalance", sys.executable, dnsbalance(), ROOT)]
    if python_path:  # the same checkout with its native fast path switched off (issue 27)
        found.append(Server("dnsbalance python", sys.executable, dnsbalance(), ROOT, env={"DNSBALANCE_NATIVE": "0"}))
    if baseline is not None:  # `python -m dnsbalance` from that checkout: its package comes first on the path
        found.append(Server("dnsbalance@base", sys.executable, dnsbalance(), baseline.resolve()))
    if "gdnsd" not in skip:
        found.append(Server("gdnsd", "gdnsd", gdnsd_config, folder))
    if "pdns" not in skip:
        found.append(Server("PowerDNS geoip", "pdns_server", pdns_config, folder))
    return found


def scaling_servers() -> list[Server]:
    return [Server(f"dnsbalance --workers {n}", sys.executable, dnsbalance(n), ROOT, ALL_CORES) for n in (1, 2)]


def measure(server: Server, folder: Path, data: Path, options: list[str], rates: list[int], seconds: float,
            clients: int, latency: bool) -> Measured:
    if shutil.which(server.program) is None:
        return Measured([], note=f"{server.program} not installed")
    port = free_port()
    home = folder / f"{server.program.rsplit('/', 1)[-1]}-{port}"
    command = server.make(home, port)
    log = home / "stderr.log"  # a file, not a pipe: a chatty server must never block on a full pipe
    with log.open("wb") as stderr:
        process = subprocess.Popen(["taskset", "-c", server.cores, *command], cwd=server.cwd,
                                   env={**os.environ, **(server.env or {})},
                                   stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        wait_answering(port, process)
        load = Load(port, data, options, clients)
        dnsperf(load, 1, 2000)  # warm up: every query shape seen once (dnsbalance caches prepared replies)
        windows = [window(process.pid, load, seconds, rate) for rate in rates]
        windows.append(window(process.pid, load, seconds, None))
        p50, p99 = latencies(dnsperf(load, min(seconds, 5), 3000, verbose=True)) if latency else (0.0, 0.0)
        return Measured(windows, p50, p99)
    except RuntimeError as exc:
        return Measured([], note=f"failed: {exc} {log.read_text(errors='replace').strip()[-300:]}")
    finally:
        stop(process)


def combine(rounds: list[Measured]) -> Measured:
    """Each figure's median over the rounds that worked (the machine is shared and noisy)."""
    good = [m for m in rounds if m.windows]
    if not good:
        return rounds[0]

    def middle(windows: list[Window]) -> Window:
        ordered = sorted(windows, key=lambda w: w.cpu_us if w.rate else -w.qps)
        return ordered[len(ordered) // 2]

    windows = [middle([m.windows[i] for m in good]) for i in range(len(good[0].windows))]
    note = "" if len(good) == len(rounds) else f"{len(rounds) - len(good)} round(s) failed"
    return Measured(windows, good[0].p50, good[0].p99, note)


def run(servers: list[Server], rounds: int, measure_one: Callable[[Server, bool], Measured]) -> dict[str, Measured]:
    """Rounds interleaved (a, b, c, a, b, c) so that a noisy minute hits every server alike."""
    found: dict[str, list[Measured]] = {s.name: [] for s in servers}
    for index in range(rounds):
        for server in servers:
            found[server.name].append(measure_one(server, index == 0))
    for name, measured in found.items():
        if rounds > 1:
            print(f"  {name} by round: " + "; ".join(
                ", ".join(f"{w.cpu_us:.1f}" if w.rate else f"full {w.qps:,.0f} q/s" for w in m.windows)
                for m in measured if m.windows) + "  (CPU µs/query by rate, full load)")
    return {name: combine(measured) for name, measured in found.items()}


# --- report ---

def rate_label(rate: int | None) -> str:
    return "full load" if rate is None else f"{rate:,} q/s"


def table(results: dict[str, Measured]) -> Iterator[str]:
    yield (f"{'server':<24} {'offered':>11} {'answered/s':>11} {'lost':>7} {'CPU µs/query':>13} "
           f"{'server core':>12} {'waited':>7} {'dnsperf':>8}  by process")
    for name, measured in results.items():
        if not measured.windows:
            yield f"{name:<24} {measured.note}"
            continue
        for w in measured.windows:
            mark = "  short of the rate" if w.short else ""  # the server or dnsperf could not keep up
            if w.client_bound:
                mark += "  CLIENT-BOUND: dnsperf saturated its core, not a server figure"
            yield (f"{name:<24} {rate_label(w.rate):>11} {w.qps:>11,.0f} {w.lost_percent:>6.2f}% "
                   f"{w.cpu_us:>13.2f} {w.busy:>11.0%} {w.wait_share:>7.0%} {w.client_busy:>8.0%}  "
                   f"{w.spread}{mark}").rstrip()
        if measured.p50:
            yield f"{name:<24} latency at 3,000 q/s: p50 {measured.p50:.3f} ms, p99 {measured.p99:.3f} ms"
        if measured.note:
            yield f"{name:<24} {measured.note}"


def ratios(ours: Measured, other: Measured, label: str) -> str:
    if not ours.windows or not other.windows:
        return f"{label}: no figures"
    parts = [f"CPU/query at {rate_label(a.rate)} {a.cpu_us / b.cpu_us:.2f}x"
             for a, b in zip(ours.windows, other.windows) if a.rate is not None and b.cpu_us]
    full_a, full_b = ours.windows[-1], other.windows[-1]
    bound = " (client-bound: dnsperf saturated, a floor not a ratio)" if full_a.client_bound or full_b.client_bound \
        else ""
    parts.append(f"full-load q/s {full_a.qps / full_b.qps:.2f}x{bound}" if full_b.qps else "full-load q/s -")
    return f"{label}: " + ", ".join(parts)


def describe_mix(mix: str) -> str:
    if mix == "jp":
        return "90% deb.cdn.example.org A, 10% NXDOMAIN, ECS 133.16.0.0/16 (JP) on every query"
    countries = sorted({c for c, _ in SUBNETS}, key=[c for c, _ in SUBNETS].index)
    return (f"{len(SUBNETS)} client subnets /24 ({', '.join(countries)}), each 9x deb.cdn.example.org A and "
            "1x NXDOMAIN (90% / 10%), ECS on every query")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each dnsperf window (default 10)")
    parser.add_argument("--rates", default="10000,40000,80000", help="fixed rates in q/s, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; each figure is the median")
    parser.add_argument("--skip", default="", help="comma-separated: gdnsd, pdns")
    parser.add_argument("--mix", choices=("world", "jp"), default="world", help="query mix (see above)")
    parser.add_argument("--clients", type=int, default=16,
                        help="dnsperf client sockets: source ports, which SO_REUSEPORT hashes over workers")
    parser.add_argument("--no-workers", action="store_true", help="skip the --workers 1 / 2 part")
    parser.add_argument("--python-path", action="store_true",
                        help="also run dnsbalance with DNSBALANCE_NATIVE=0 (its pure-Python fast path): native/Python")
    parser.add_argument("--baseline", type=Path,
                        help="also run dnsbalance from this checkout (e.g. `git worktree add DIR REV`): before/after")
    args = parser.parse_args()
    if shutil.which("dnsperf") is None or shutil.which("taskset") is None:
        print("needs dnsperf and taskset (apt-get install dnsperf util-linux)")
        return 1
    rates = [int(r) for r in args.rates.split(",") if r]
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # so `finally` stops the servers on SIGTERM too
    with tempfile.TemporaryDirectory(prefix="dnsbalance-cpu-") as tmp:
        folder = Path(tmp)
        data, options = write_queries(folder, args.mix)
        print(f"query mix: {describe_mix(args.mix)}")
        print(f"each window {args.seconds:g} s; dnsperf on core {CLIENT_CORE}, -c {args.clients}; "
              f"CPU = utime+stime of all the server's processes and threads (/proc), per answered query")

        def one(server: Server, first: bool) -> Measured:
            return measure(server, folder, data, options, rates, args.seconds, args.clients, latency=first)

        print(f"\n== servers pinned to core {SERVER_CORE}")
        results = run(servers(folder, set(filter(None, args.skip.split(","))), args.baseline, args.python_path),
                      args.rounds, one)
        print("\n".join(table(results)))
        ours = results["dnsbalance"]
        for name, measured in results.items():
            if name != "dnsbalance":
                print(ratios(ours, measured, f"dnsbalance / {name}"))
        if "dnsbalance python" in results and "gdnsd" in results:
            print(ratios(results["dnsbalance python"], results["gdnsd"], "dnsbalance python / gdnsd"))
        if not args.no_workers:
            print(f"\n== dnsbalance --workers, not pinned (cores {ALL_CORES}, shared with dnsperf on core "
                  f"{CLIENT_CORE})")
            scaling = run(scaling_servers(), args.rounds, one)
            print("\n".join(table(scaling)))
            one_worker, two_workers = scaling.values()
            print(ratios(two_workers, one_worker, "--workers 2 / --workers 1"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
