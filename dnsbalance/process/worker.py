"""The worker role of `serve --workers N`: listeners only.

A worker is forked by its supervisor and starts from the supervisor's inputs as they are in memory at
that moment (never from files that may have been edited or broken since). Later inputs come down its
pipe; it answers the supervisor's pings only while its UDP threads and event loop are alive; and it ends
when the supervisor does: the pipe reports end-of-file, and the kernel sends SIGTERM (PR_SET_PDEATHSIG)
should the supervisor be killed outright.
"""
from __future__ import annotations

import asyncio
import copyreg
import ctypes
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from dnsbalance.server import open_listeners, run, save_counters
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import Loaded, TableInputs

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
STALL = 2.0  # seconds without an event-loop tick after which a worker stops answering pings


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


def _mapping_proxy(data: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(data)


# The configuration's read-only mappings travel down the pipe as the dicts they wrap.
copyreg.pickle(MappingProxyType, lambda proxy: (_mapping_proxy, (dict(proxy),)))


def _die_with(supervisor: int) -> None:
    """SIGTERM when the supervisor dies, even by SIGKILL; and at once if it is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the pipe's end-of-file still stops the worker
    if os.getppid() != supervisor:
        os._exit(0)


def worker_main(index: int, conn: Connection, inherited: list[Closable], loaded: Loaded, inputs: TableInputs,
                listen: list[str], config_dir: Path, supervisor: int) -> None:
    _die_with(supervisor)
    for other in inherited:
        other.close()  # the supervisor's pipe ends and port placeholders: only the supervisor may hold them
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)  # the supervisor decides reloads and stops
    balancer = Balancer(loaded, counters=f"worker-{index}", health=inputs.health,
                        generation=inputs.generation - 1, secret=inputs.cookie_secret)
    run(_serve(balancer, listen, config_dir, conn))


async def _serve(balancer: Balancer, listen: list[str], config_dir: Path, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    listeners = await open_listeners(balancer, listen, reuse_port=True)
    tick = [time.monotonic()]

    async def heartbeat() -> None:
        while True:
            tick[0] = time.monotonic()
            await asyncio.sleep(STALL / 4)

    def control() -> None:
        """The supervisor's pipe, on its own thread: new inputs are built here, off the event loop."""
        conn.send(Ready(os.getpid()))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                log.error("supervisor gone; worker %d stopping", os.getpid())
                loop.call_soon_threadsafe(stop.set)
                return
            if isinstance(message, Ping):
                alive = all(t.thread.is_alive() for t in listeners.threads)
                if alive and time.monotonic() - tick[0] < STALL:
                    conn.send(Pong(message.sequence))
            elif isinstance(message, TableInputs):
                try:
                    balancer.adopt(message, config_dir)
                except Exception:
                    log.exception("worker %d could not build the supervisor's table; keeping its own", os.getpid())

    beat = asyncio.create_task(heartbeat())
    saver = asyncio.create_task(save_counters(balancer))
    threading.Thread(target=control, name="supervisor-pipe", daemon=True).start()
    try:
        await stop.wait()
    finally:
        beat.cancel()
        saver.cancel()
        balancer.stats.save()
        listeners.close()
