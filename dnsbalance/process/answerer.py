"""An answering process: the listeners of one table generation, and nothing else.

The supervisor (process/supervisor.py) builds every table itself and then forks an answerer that starts
with that table already in memory: nothing is read, parsed, unpickled or computed before the first
answer, and nothing the supervisor does later (reloads, health cycles, precomputing answers, the status
page) runs in this process, so none of it can hold this process's GIL while a query waits. The sockets are
the supervisor's, inherited: the new answerer reads the same kernel queues the old one did, so a swap of
tables loses no datagram and no connection attempt. Once the new one reads the old one is retired: it
stops reading, finishes the connections it holds, sends its last counts and exits.

Counts travel up the pipe once a second as Totals (the difference since the last); the supervisor adds
them up, writes them to the state folder and serves them to the status page and /metrics.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Protocol

from dnsbalance.pipeline.pipeline import Pipeline
from dnsbalance.server import TcpProtocol, UdpThread
from dnsbalance.stats.counters import Totals

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
STALL = 2.0  # seconds without an event-loop tick after which an answerer stops answering pings
COUNT_INTERVAL = 1.0  # seconds between counts sent up
COUNT_PIECE = 500  # counter entries per message up the pipe (each pickled holding the GIL: ~0.5 ms)
DRAIN = 5.0  # seconds a retired answerer keeps its open TCP connections
SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while another waits for it
SETTLE = 4.0  # seconds a retired answerer's UDP threads may take to end (the supervisor waits 5)


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class Ready:
    pid: int


@dataclass(frozen=True)
class Ping:
    sequence: int


@dataclass(frozen=True)
class Pong:
    sequence: int


@dataclass(frozen=True)
class Start:
    """Begin reading the sockets (beside the previous answerer of the slot, which is retired next)."""


@dataclass(frozen=True)
class Started:
    pid: int


@dataclass(frozen=True)
class Retire:
    """Stop reading, say Stopped, finish what is open, send the last counts and exit."""


@dataclass(frozen=True)
class Stopped:
    pid: int


@dataclass(frozen=True)
class Counts:
    totals: Totals


@dataclass(frozen=True)
class Flush:
    """Send the counts now (the status page or /metrics is being read), then Flushed."""

    token: int


@dataclass(frozen=True)
class Flushed:
    token: int


@dataclass(frozen=True)
class Sockets:
    """One slot's listening sockets, bound by the supervisor and handed down to each generation."""

    udp: tuple[socket.socket, ...]
    tcp: tuple[socket.socket, ...]


def _die_with(supervisor: int) -> None:
    """SIGTERM when the supervisor dies, even by SIGKILL; and at once if it is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the pipe's end-of-file still stops the answerer
    if os.getppid() != supervisor:
        os._exit(0)


def answerer_main(conn: Connection, pipeline: Pipeline, sockets: Sockets, inherited: list[Closable],
                  supervisor: int) -> None:
    """The forked child's entry point, with the answer pipeline pinned to the generation it serves (the
    Balancer, with configuration and health, is the supervisor's business). The parent froze its heap just before the fork: the collector here
    never walks the table (which would copy every page of it out of the memory shared with the parent)."""
    # The parent's SIGTERM handler came with the fork and would only poke the parent's event loop: until
    # this process's loop installs its own, SIGTERM (the supervisor's death, PR_SET_PDEATHSIG) must kill.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    _die_with(supervisor)
    for other in inherited:
        other.close()  # other answerers' pipe ends, the instance lock: only the supervisor may hold them
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)  # the supervisor decides reloads and stops
    pipeline.rng = random.Random()  # not the parent's sequence: siblings must not draw alike
    # The event loop (TCP, pipe), the pipe reader and the counts take the GIL beside the UDP threads:
    # hand it over after 0.5 ms rather than the default 5 ms, so a datagram waits at most that long.
    sys.setswitchinterval(SWITCH_INTERVAL)
    pipeline.stats.forked()
    from dnsbalance.server import run

    run(_serve(pipeline, sockets, conn))


async def _serve(pipeline: Pipeline, sockets: Sockets, conn: Connection) -> None:
    """Ready at once; reading only after Start, which the supervisor sends once this answerer is ready
    (one that fails to start leaves the old one answering)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    start = asyncio.Event()
    retire = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    TcpProtocol.active.clear()  # the parent's class attribute, copied by the fork
    threads: list[UdpThread] = []
    tick = [time.monotonic()]
    sending = threading.Lock()  # the pipe is written by two threads

    def send(message: object) -> bool:
        """False when the supervisor's end is closed (it stopped, or is stopping, while this one started or
        retired): nobody is left to tell, and the pipe's end of file stops this answerer."""
        try:
            with sending:
                conn.send(message)
        except OSError:
            return False
        return True

    def send_counts() -> bool:
        """Take and send under one lock: counts taken by one thread must be on the pipe before another
        thread's later (final) counts, or the process could end holding them. False as `send`."""
        try:
            with sending:
                for piece in pipeline.stats.take().pieces(COUNT_PIECE):
                    conn.send(Counts(piece))
        except OSError:
            return False
        return True

    async def heartbeat() -> None:
        while True:
            tick[0] = time.monotonic()
            await asyncio.sleep(STALL / 4)

    def control() -> None:
        """The supervisor's pipe, on its own thread."""
        ready = send(Ready(os.getpid()))
        while True:
            try:
                if not ready:
                    raise EOFError
                message = conn.recv()
            except (EOFError, OSError):
                log.error("supervisor gone; answerer %d stopping", os.getpid())
                loop.call_soon_threadsafe(stop.set)
                return
            if isinstance(message, Ping):
                alive = all(t.thread.is_alive() for t in threads)
                if alive and time.monotonic() - tick[0] < STALL:
                    send(Pong(message.sequence))
            elif isinstance(message, Flush):
                send_counts()
                send(Flushed(message.token))
            elif isinstance(message, Start):
                loop.call_soon_threadsafe(start.set)
            elif isinstance(message, Retire):
                loop.call_soon_threadsafe(retire.set)

    def counting() -> None:
        while True:
            time.sleep(COUNT_INTERVAL)
            if not send_counts():
                return

    async def first(*events: asyncio.Event) -> None:
        waits = [asyncio.create_task(e.wait()) for e in events]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()

    beat = asyncio.create_task(heartbeat())
    threading.Thread(target=control, name="supervisor-pipe", daemon=True).start()
    threading.Thread(target=counting, name="counts", daemon=True).start()
    await first(start, stop)
    servers = []
    if not stop.is_set():
        threads = [UdpThread(pipeline, udp) for udp in sockets.udp]
        servers = [await loop.create_server(lambda: TcpProtocol(pipeline), sock=tcp) for tcp in sockets.tcp]
        send(Started(os.getpid()))
        await first(retire, stop)
    beat.cancel()
    for server in servers:
        server.close()  # this process's copies only: the next generation accepts on the same sockets
    for thread in threads:
        thread.retire()  # the socket stays open: it is the supervisor's, and the next generation's
    for thread in threads:  # a blocked receive returns within RECEIVE_TIMEOUT; a busy loop after its datagram
        thread.settle(SETTLE)  # Stopped only once it has: never two generations reading at once
    send(Stopped(os.getpid()))
    if not stop.is_set():
        deadline = time.monotonic() + DRAIN
        while TcpProtocol.active and time.monotonic() < deadline and not stop.is_set():
            await asyncio.sleep(0.05)
    for protocol in list(TcpProtocol.active):
        protocol.close()
    send_counts()
