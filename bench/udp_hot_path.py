#!/usr/bin/env python3
"""Where a UDP query's CPU goes in the answering thread, Python fast path against native (issue 27), in process.

A client socket on loopback sends bursts of 32 queries of bench/cpu_per_query.py's mix (12 client subnets, 9 answered
names and 1 NXDOMAIN each, ECS on every query); the server socket takes each burst as one recvmmsg batch. For the
Python path (udpio.MmsgBatch + answer/fastpath.py, as server.py's loop) the thread CPU time (time.thread_time, so
time spent waiting for a core on a busy machine is not counted) of the three steps is measured apart: receive
(recvmmsg and turning the buffers into bytes and client strings), answer (the prepared reply: key, lookup, draw,
count, join) and send (copying into the send buffers and sendmmsg). For the native path (dnsbalance/_native.c),
one call does all three. Every shape is seen once before the measurement (the steady state of a server).

    python bench/udp_hot_path.py [--bursts 3000]
"""
from __future__ import annotations

import argparse
import random
import resource
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cpu_per_query import ANSWERED, MISSING, SUBNETS, ecs_query  # noqa: E402

from dnsbalance import udpio  # noqa: E402
from dnsbalance.answer import native  # noqa: E402
from dnsbalance.serving.balancer import Balancer  # noqa: E402
from dnsbalance.serving.inputs import load  # noqa: E402
from dnsbalance.stats.counters import QueryStats  # noqa: E402

WIDTH = udpio.WIDTH


def burst(client: socket.socket, target: tuple[str, int], messages: list[bytes], start: int) -> None:
    for i in range(WIDTH):
        message = messages[(start + i) % len(messages)]
        client.sendto(((start + i) & 0xFFFF).to_bytes(2, "big") + message[2:], target)


def drain(client: socket.socket, expected: int) -> None:
    for _ in range(expected):
        client.recv(4096)


def split() -> tuple[float, float]:
    """This thread's user and kernel CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime, usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", type=int, default=3000)
    args = parser.parse_args()
    loaded, problems = load(ROOT / "config")
    if loaded is None:
        print(problems)
        return 1
    serving = Balancer(loaded).serving
    messages = [ecs_query(name, network, 24) for _, network in SUBNETS for name in [ANSWERED] * 9 + [MISSING]]
    fast, locate, rng, stats = serving.fast, serving.locator.locate, random.Random(1), QueryStats()

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    target = server.getsockname()

    batch = udpio.MmsgBatch(server, False)
    receive = send = answer = 0.0
    count = 0
    user = kernel = 0.0
    for n in range(args.bursts + 10):
        if n == 10:
            user, kernel = split()
        burst(client, target, messages, n * WIDTH)
        started = time.thread_time()
        got = batch.receive()
        taken = time.thread_time()
        replies = [fast.answer(data, host, locate, rng, False, stats) for data, host in got]
        answered = time.thread_time()
        batch.send(replies)
        sent = time.thread_time()
        drain(client, len(got))
        if n >= 10:  # the first bursts prepare every shape
            receive, answer, send, count = (receive + taken - started, answer + answered - taken,
                                            send + sent - answered, count + len(got))
    after = split()
    python_user, python_kernel = (after[0] - user) / count * 1e6, (after[1] - kernel) / count * 1e6
    python = (receive + answer + send) / count * 1e6
    print(f"Python path, per datagram: receive {receive / count * 1e6:.2f} µs, answer {answer / count * 1e6:.2f} µs, "
          f"send {send / count * 1e6:.2f} µs; {python:.2f} µs in all ({count} datagrams in batches of {WIDTH}), "
          f"of which user {python_user:.2f} µs, kernel {python_kernel:.2f} µs (the client's sends and receives "
          f"included: same for both paths)")

    if native._native is None:
        print("native path: the extension is not built")
        return 0
    path = fast.native
    shapes = path.process_shapes()

    def fallback(data: bytes, host: str, repeated: bool) -> bytes | None:
        prepared = fast.lookup(data, host, locate, False, stats)
        if prepared is None:
            return None
        path.learn(data, host, prepared)
        return prepared.reply(data[:2], rng, stats)

    cbatch = native._native.Batch(server.fileno(), False, False, WIDTH)
    spent = 0.0
    count = natively = 0
    for n in range(args.bursts + 10):
        if n == 10:
            user, kernel = split()
        burst(client, target, messages, n * WIDTH)
        started = time.thread_time()
        got, answered_natively, _ = cbatch.serve(shapes, rng.random, fallback)
        done = time.thread_time()
        drain(client, got)
        if n >= 10:
            spent, count, natively = spent + done - started, count + got, natively + answered_natively
    after = split()
    native_user, native_kernel = (after[0] - user) / count * 1e6, (after[1] - kernel) / count * 1e6
    ours = spent / count * 1e6
    print(f"native path, per datagram: receive + answer + send {ours:.2f} µs ({natively} of {count} answered "
          f"natively); {ours / python:.2f}x the Python path's CPU; user {native_user:.2f} µs, kernel "
          f"{native_kernel:.2f} µs (user {native_user / python_user:.2f}x the Python path's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
