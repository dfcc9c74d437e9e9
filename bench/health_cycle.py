#!/usr/bin/env python3
"""Benchmark: one health cycle over N local mirrors, of which a share never answer.

Each mirror is its own origin (127.0.x.y, one port), served by a helper process; the dead ones accept
the connection and never send a byte. Prints the cycle's wall time against the timeout, and the
prober's peak memory. Everything stays on 127.0.0.0/8.

    python bench/health_cycle.py [--mirrors 1000] [--dead 0.1] [--timeout 5]
"""
from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnsbalance.configuration.load import load_config  # noqa: E402
from dnsbalance.health.cycle import run_cycle  # noqa: E402
from dnsbalance.health.fetch import new_client  # noqa: E402

STAMP = b"Sat Nov 21 12:00:01 UTC 2026\nArchive serial: 2026112101\n"

SERVER = r'''
import asyncio, sys
port, count, dead = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
STAMP = %r
hold = []
async def alive(reader, writer):
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %%d\r\n\r\n" %% len(STAMP) + STAMP)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def silent(reader, writer):
    hold.append(writer)  # accept, never answer
async def main():
    for i in range(count):
        host = f"127.0.{1 + i // 250}.{1 + i %% 250}"
        await asyncio.start_server(silent if i < dead else alive, host, port, backlog=64)
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
''' % (STAMP,)


def address(index: int) -> str:
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path, count: int, port: int, timeout: float, concurrency: int) -> Path:
    (folder / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n"
        f"health: {{timeout: {timeout}, concurrency: {concurrency}}}\n")
    # each mirror's address is the loopback address its helper listens on: the served probes (every address,
    # the balanced name as Host; on by default) reach it as the URL's probe does
    mirrors = "".join(f"  m{i}: {{addresses: [{address(i)}], url: 'http://{address(i)}:{port}/debian/'}}\n"
                      for i in range(count))
    (folder / "mirrors.yaml").write_text("mirrors:\n" + mirrors)
    (folder / "default.yaml").write_text("deb:\n" + "".join(f"  m{i}: 0\n" for i in range(count)))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirrors", type=int, default=1000)
    parser.add_argument("--dead", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    dead = int(args.mirrors * args.dead)
    port = free_port()
    helper = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.mirrors), str(dead)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdout is not None and helper.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as folder:
            config = load_config(write_config(Path(folder), args.mirrors, port, args.timeout, args.concurrency))
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

            async def once():  # type: ignore[no-untyped-def]
                client = new_client(args.concurrency)
                try:
                    return await run_cycle(config, client, args.concurrency)
                finally:
                    await client.aclose()

            started = time.monotonic()
            report = asyncio.run(once())
            wall = time.monotonic() - started
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        good = sum(v.ok for v in report.verdicts)
        timeouts = sum(1 for v in report.verdicts if v.reason.startswith("timeout"))
        print(f"mirrors            {args.mirrors} ({dead} never answer), concurrency {args.concurrency}")
        print(f"verdicts           {good} ok, {timeouts} timed out, {args.mirrors - good - timeouts} other")
        print(f"cycle wall time    {wall:.2f} s = {wall / args.timeout:.2f} x timeout ({args.timeout:g} s); "
              f"serial probing would take {dead * args.timeout:.0f} s for the dead ones alone")
        print(f"peak RSS           {peak / 1024:.1f} MiB (before the cycle {before / 1024:.1f} MiB, "
              f"+{(peak - before) / 1024:.1f} MiB)")
        return 0 if good == args.mirrors - dead else 1
    finally:
        helper.kill()
        helper.wait()


if __name__ == "__main__":
    sys.exit(main())
