"""`serve --workers N`: N processes answer on the same ports (SO_REUSEPORT); one supervisor probes.

The supervisor runs the health cycle (one prober, not N hitting every mirror), saves the health state to
`state_dir/health.json` as a single-process server does, and sends each worker SIGUSR1. A worker then
reloads the configuration if its files changed, reads the saved health state, and rebuilds its table:
table generation is a pure function of (configuration, health), so every worker serves the same table.
SIGHUP to the supervisor validates the configuration first and is passed on only if it loads.
A worker that dies is started again.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import signal
import socket
from multiprocessing.process import BaseProcess
from pathlib import Path

from dnsbalance.configuration.names import parse_hostport
from dnsbalance.configuration.problems import Severity
from dnsbalance.ops.web import start_status
from dnsbalance.process.scheduling import HealthScheduler
from dnsbalance.server import bind_pair, serve
from dnsbalance.serving.balancer import Balancer, load

log = logging.getLogger(__name__)


def _concrete(listen: list[str]) -> tuple[list[str], list[socket.socket]]:
    """Fix port 0 to a real port now, holding it with SO_REUSEPORT sockets until the workers are up."""
    held: list[socket.socket] = []
    concrete = []
    for item in listen:
        host, port = parse_hostport(item)
        udp, tcp = bind_pair(host, port, reuse_port=True)
        held += [udp, tcp]
        port = udp.getsockname()[1]
        concrete.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return concrete, held


def _worker(config_dir: Path, listen: list[str], index: int, held: list[socket.socket],
            ready: "multiprocessing.Queue[int]") -> None:
    from dnsbalance.cli import run  # the same loop choice (uvloop) as a single process

    for sock in held:
        sock.close()  # the supervisor's placeholders, inherited by fork: they must not take queries here
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when workers stop
    loaded, problems = load(config_dir)
    if loaded is None:
        for problem in problems:
            log.error("worker %d: %s", index, problem)
        os._exit(1)
    balancer = Balancer(loaded, counters=f"worker-{index}")
    run(serve(balancer, listen, config_dir, worker=True, ready=lambda: ready.put(index)))


class Supervisor:
    def __init__(self, balancer: Balancer, config_dir: Path, listen: list[str], count: int,
                 status_listen: str | None = None) -> None:
        self.status_listen = status_listen
        self.balancer = balancer
        self.config_dir = config_dir
        self.listen = listen
        self.count = count
        self.context = multiprocessing.get_context("fork")
        self.workers: list[BaseProcess | None] = [None] * count
        self.ready = self.context.Queue()
        self.held: list[socket.socket] = []

    def start(self, index: int) -> None:
        process = self.context.Process(target=_worker, args=(self.config_dir, self.listen, index, self.held,
                                                             self.ready),
                                       name=f"dnsbalance-worker-{index}", daemon=True)
        process.start()
        self.workers[index] = process

    def notify(self) -> None:
        for process in self.workers:
            if process is not None and process.pid and process.is_alive():
                os.kill(process.pid, signal.SIGUSR1)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        health = None
        if self.balancer.config.settings.health.enabled:
            health = HealthScheduler(self.balancer, self.config_dir, on_change=self.notify)
            health.start()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        web = await start_status(self.balancer, self.status_listen)
        try:
            while not stop.is_set():
                for index, process in enumerate(self.workers):
                    if process is not None and not process.is_alive():
                        log.error("worker %d exited (%s); starting it again", index, process.exitcode)
                        self.start(index)
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except TimeoutError:
                    pass
        finally:
            log.info("shutting down %d workers", self.count)
            if web is not None:
                await web.stop()
            if health is not None:
                await health.stop()
            for process in self.workers:
                if process is not None and process.is_alive():
                    process.terminate()
            for process in self.workers:
                if process is not None:
                    process.join(5)

    def _sighup(self) -> None:
        problems = self.balancer.reload(self.config_dir)
        if any(p.severity is Severity.ERROR for p in problems):
            return  # refused: the workers keep what they serve
        self.notify()


def serve_workers(balancer: Balancer, listen: list[str], config_dir: Path, count: int,
                  status_listen: str | None = None) -> int:
    concrete, held = _concrete(listen)
    supervisor = Supervisor(balancer, config_dir, concrete, count, status_listen)
    supervisor.held = held
    for index in range(count):
        supervisor.start(index)
    try:
        for _ in range(count):
            supervisor.ready.get(timeout=60)
    except queue.Empty:
        log.error("workers did not start")
        for process in supervisor.workers:
            if process is not None:
                process.kill()
        return 1
    # The workers have their own sockets on these ports now; ours would only take a share of the queries.
    for sock in held:
        sock.close()
    supervisor.held = []
    for item in concrete:
        log.info("serving %s on %s (udp, tcp) with %d workers", balancer.config.settings.zone, item, count)
    from dnsbalance.cli import run

    run(supervisor.run())
    return 0
