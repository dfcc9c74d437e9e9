#!/usr/bin/env python3
"""Benchmark: answer latency while the table is rebuilt, and memory after floods (issue 14).

Serves the big configuration of bench/table_generation.py (200 mirrors, 249 countries x 50 names x 8 mirrors)
with the built-in GeoIP database, and sends UDP queries at a fixed rate (default 3,000/s) for random names,
each with an EDNS Client Subnet of a random /24 (so clients land in many countries' tables), plus one TCP
query every 50 ms. Per phase it prints p50/p99/max of UDP and TCP latency and the queries lost (no reply
within 1 s):

  floor     this client against a UDP echo process: what the machine adds whatever the server
  idle      nothing else happens
  reload    SIGHUP every 2 s (configuration re-read, table rebuilt; a file is changed each time)
  status    /status.json, / and /metrics fetched every 2 s

After each phase, each process's resident memory and how much of it is its own (not shared with the
supervisor it was forked from). Then the floods, with the RSS of supervisor and answerers together before,
at its peak and after: 150,000 queries of random types, and a TCP client that pipelines queries for 10 s
and never reads. Not a test: run it on purpose.

    python bench/latency_under_rebuild.py [--seconds 20] [--rate 3000] [--workers 1]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table_generation import NAMES, write  # noqa: E402


def query(ident: int, name: str, subnet: bytes | None, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in f"{name}.cdn.example.org".split(".")) + b"\x00"
    wire = struct.pack("!HHHHHH", ident, 0, 1, 0, 0, 1) + labels + struct.pack("!HH", qtype, 1)
    option = b"" if subnet is None else struct.pack("!HHHBB", 8, 7, 1, 24, 0) + subnet
    return wire + b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(option)) + option


def rss_mib(pid: int) -> float:
    """The resident memory of a process and its children (the supervisor and its answerers)."""
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(rss_mib(int(child)) for child in children)


def memory_each(pid: int) -> str:
    """Each process's resident memory and, of it, what is its own (private pages: not shared with the
    supervisor it was forked from), supervisor first; then the proportional set size of them all (each
    shared page divided among the processes that map it): what the server costs the machine."""
    try:
        pids = [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pids = [pid]
    shown, pss = [], 0.0
    for each in pids:
        fields = {}
        try:
            for line in Path(f"/proc/{each}/smaps_rollup").read_text().splitlines()[1:]:
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0]) / 1024
        except OSError:
            continue
        private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        pss += fields.get("Pss", 0)
        shown.append(f"{fields.get('Rss', 0):.0f} MiB ({private:.0f} own)")
    return ", ".join(shown) + f"; PSS of all {pss:.0f} MiB"


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no replies"
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {at(0.5):6.2f} ms  p99 {at(0.99):7.2f} ms  max {ordered[-1] * 1000:7.1f} ms"


class Load:
    """UDP at a fixed rate from one socket, TCP every 50 ms; latencies collected per phase. Replies are
    received and timed in a process of their own (send times in shared memory), so that the sender's
    and TCP client's Python does not hold up the receipt of a reply and count against the server."""

    def __init__(self, port: int, rate: int) -> None:
        self.port, self.rate = port, rate
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.connect(("127.0.0.1", port))
        context = multiprocessing.get_context("fork")
        self.sent_at = context.RawArray("d", 65536)
        self.asking, answering = context.Pipe()
        self.receiver = context.Process(target=receive, args=(self.sock, self.sent_at, answering), daemon=True)
        self.receiver.start()
        self.tcp: list[float] = []
        self.sent = 0
        self.tcp_lost = 0
        self.running = True
        rng = random.Random(7)
        self.subnets = [rng.getrandbits(24).to_bytes(3, "big") for _ in range(300)]
        threading.Thread(target=self._send, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def reset(self) -> tuple[list[float], list[float], int, int]:
        time.sleep(1.0)  # replies still in flight belong to the phase that sent them
        self.asking.send("reset")
        udp = self.asking.recv()
        tcp, sent, tcp_lost = self.tcp, self.sent, self.tcp_lost
        self.tcp, self.sent, self.tcp_lost = [], 0, 0
        return udp, tcp, sent, tcp_lost

    def stop(self) -> None:
        self.running = False
        self.receiver.kill()

    def _send(self) -> None:
        rng = random.Random(8)
        ident = 0
        interval = 1.0 / self.rate
        next_at = time.perf_counter()
        while self.running:
            now = time.perf_counter()
            if now < next_at:
                time.sleep(min(next_at - now, 0.002))
                continue
            while next_at <= now:
                ident = (ident + 1) & 0xFFFF
                wire = query(ident, f"name{rng.randrange(NAMES)}", rng.choice(self.subnets))
                self.sent_at[ident] = time.perf_counter()
                try:
                    self.sock.send(wire)
                    self.sent += 1
                except OSError:
                    pass
                next_at += interval

    def _tcp(self) -> None:
        rng = random.Random(9)
        while self.running:
            wire = query(rng.randrange(65536), "name1", rng.choice(self.subnets))
            started = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as tcp:
                    tcp.sendall(struct.pack("!H", len(wire)) + wire)
                    size = struct.unpack("!H", tcp.recv(2))[0]
                    while size > 0:
                        size -= len(tcp.recv(size))
                self.tcp.append(time.perf_counter() - started)
            except OSError:
                self.tcp_lost += 1
            time.sleep(0.05)


def receive(sock: socket.socket, sent_at: "multiprocessing.Array[float]", answering: Connection) -> None:
    """The receiving process: a reply's latency is its receipt time less its query's send time (by ID;
    perf_counter is CLOCK_MONOTONIC, one clock for both processes). Hands over the latencies on "reset"."""
    sock.settimeout(0.05)
    udp: list[float] = []
    while True:
        if answering.poll():
            answering.recv()
            answering.send(udp)
            udp = []
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        elapsed = time.perf_counter() - sent_at[struct.unpack("!H", data[:2])[0]]
        if elapsed < 1.0:
            udp.append(elapsed)


def echo(sock: socket.socket) -> None:
    """A UDP echo in a process of its own: the floor of what this client can measure on this machine."""
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(data, peer)


def client_floor(seconds: float, rate: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    server = multiprocessing.get_context("fork").Process(target=echo, args=(sock,), daemon=True)
    server.start()
    load = Load(sock.getsockname()[1], rate)
    time.sleep(1)
    load.reset()
    time.sleep(seconds)
    udp, _, sent, _ = load.reset()
    load.stop()
    server.kill()
    sock.close()
    print(f"{'floor':<8} UDP {percentiles(udp)}  lost {sent - len(udp)} of {sent}  (this client against a UDP echo)")


def fetch(url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
    except OSError as exc:
        print(f"  {url}: {exc}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1, help="answering processes (serve --workers)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write(Path(tmp) / "config", random.Random(1))
        with (folder / "dnsbalance.yaml").open("a") as handle:
            handle.write(f"geoip: {{database: builtin}}\nhealth: {{enabled: false}}\nstate_dir: {tmp}/state\n")
        log = open(Path(tmp) / "server.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "dnsbalance", "serve", "--config", str(folder),
                                   "--listen", "127.0.0.1:0", "--status", "127.0.0.1:0",
                                   *(["--workers", str(args.workers)] if args.workers > 1 else [])],
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            port = status = 0
            deadline = time.monotonic() + 300
            complete = False
            while not (port and status and complete):
                assert time.monotonic() < deadline and server.poll() is None, "server did not start"
                text = (Path(tmp) / "server.log").read_text()
                for line in text.splitlines():
                    if "(udp, tcp)" in line:
                        port = int(line.split("127.0.0.1:")[1].split()[0])
                    if "/metrics on http://" in line:
                        status = int(line.rsplit(":", 1)[1].strip("/ \n"))
                # every pool's answers computed (the first answerers start before, on a big table)
                complete = port > 0 and "precomputed" in text.split("(udp, tcp)", 1)[-1]
                time.sleep(0.2)
            base = f"http://127.0.0.1:{status}"
            time.sleep(2)  # the complete generation in service
            print(f"server pid {server.pid}, RSS supervisor, answerers: {memory_each(server.pid)}; {args.rate} q/s, "
                  f"{args.seconds:g} s per phase")
            client_floor(args.seconds, args.rate)
            load = Load(port, args.rate)
            time.sleep(3)  # warm up: first use of the pools
            load.reset()

            def phase(name: str, action: "callable[[], None] | None") -> None:  # type: ignore[valid-type]
                end = time.monotonic() + args.seconds
                while time.monotonic() < end:
                    if action is not None:
                        action()
                    time.sleep(max(0.0, min(2.0, end - time.monotonic())))
                udp, tcp, sent, tcp_lost = load.reset()
                print(f"{name:<8} UDP {percentiles(udp)}  lost {sent - len(udp)} of {sent}")
                print(f"{'':<8} TCP {percentiles(tcp)}  lost {tcp_lost}")
                print(f"{'':<8} memory: {memory_each(server.pid)}")

            touched = [0]

            def reload() -> None:
                touched[0] += 1
                path = folder / "country" / "JP.yaml"
                path.write_text(path.read_text() + f"# edit {touched[0]}\n")
                server.send_signal(signal.SIGHUP)

            def pages() -> None:
                for page in ("/status.json", "/", "/metrics"):
                    threading.Thread(target=fetch, args=(base + page,), daemon=True).start()

            phase("idle", None)
            phase("reload", reload)
            phase("status", pages)
            load.stop()
            time.sleep(1.5)
            floods(server.pid, port)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
            if os.environ.get("BENCH_LOG"):  # keep the server's log for a look
                Path(os.environ["BENCH_LOG"]).write_bytes((Path(tmp) / "server.log").read_bytes())
    return 0


def floods(pid: int, port: int) -> None:
    rng = random.Random(10)
    peak = [rss_mib(pid)]
    sampling = [True]

    def sample() -> None:
        while sampling[0]:
            peak[0] = max(peak[0], rss_mib(pid))
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    before = rss_mib(pid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(0.5)
        for batch in range(1500):
            for n in range(100):
                sock.send(query(n, "name1", None, rng.randrange(300, 65000)))
            for _ in range(100):
                try:
                    sock.recv(4096)
                except OSError:
                    break
    time.sleep(6)  # a counters save
    print(f"flood    150,000 random-type queries: RSS before {before:.0f} MiB, peak {peak[0]:.0f}, "
          f"after {rss_mib(pid):.0f}")
    before = peak[0] = rss_mib(pid)
    wire = query(1, "name1", None)
    frames = (struct.pack("!H", len(wire)) + wire) * 2000
    with socket.create_connection(("127.0.0.1", port)) as tcp:
        tcp.settimeout(0.2)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                tcp.send(frames)
            except socket.timeout:
                continue
            except OSError:
                break
    time.sleep(1)
    sampling[0] = False
    print(f"flood    TCP pipelining, replies never read, 10 s: RSS before {before:.0f} MiB, peak {peak[0]:.0f}, "
          f"after {rss_mib(pid):.0f}")


if __name__ == "__main__":
    sys.exit(main())
