"""The supervisor role of `serve --workers N`: the prober, the status page and N worker processes that
answer on the same ports (SO_REUSEPORT).

One prober, not N hitting every mirror. After each table change the supervisor sends every worker its
inputs (configuration, health, generation) down a pipe, so all workers serve the same table. It pings
each worker every half second: a worker that exits, or does not answer for WORKER_TIMEOUT, is logged,
killed and started again from the supervisor's inputs in memory.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from dnsbalance.configuration.names import parse_hostport
from dnsbalance.configuration.problems import Severity
from dnsbalance.ops.web import start_status
from dnsbalance.process.instance import record_reload
from dnsbalance.process.scheduling import HealthScheduler
from dnsbalance.process.worker import Ping, Pong, Ready, worker_main
from dnsbalance.server import bind_pair, run
from dnsbalance.serving.balancer import Balancer

log = logging.getLogger(__name__)
WATCH_INTERVAL = 0.5  # seconds between pings
WORKER_TIMEOUT = 3.0  # seconds without a pong before a worker is replaced
START_TIMEOUT = 60.0


@dataclass
class Child:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    answered: float = 0.0  # monotonic time of the last pong (or of the start)


class Supervisor:
    def __init__(self, balancer: Balancer, config_dir: Path, listen: list[str], count: int,
                 status_listen: str | None = None) -> None:
        self.balancer = balancer
        self.config_dir = config_dir
        self.listen = listen
        self.status_listen = status_listen
        self.context = multiprocessing.get_context("fork")
        self.children: list[Child | None] = [None] * count
        self.sequence = 0
        self.held: list[socket.socket] = []  # port-0 placeholders until the workers are up

    def start(self, index: int) -> None:
        ours, theirs = self.context.Pipe()
        inherited = [c.conn for c in self.children if c is not None] + [ours, *self.held]
        process = self.context.Process(
            target=worker_main, name=f"dnsbalance-worker-{index}", daemon=True,
            args=(index, theirs, inherited, self.balancer.loaded, self.balancer.inputs(), self.listen,
                  self.config_dir, os.getpid()))
        process.start()
        theirs.close()
        self.children[index] = Child(process, ours, answered=time.monotonic())

    def notify(self) -> None:
        """Every worker gets the inputs of the table now in service."""
        inputs = self.balancer.inputs()
        for child in self.children:
            if child is not None:
                try:
                    child.conn.send(inputs)
                except OSError:
                    pass  # a dead worker: the watch replaces it with these inputs

    def watch(self) -> None:
        """Read the workers' messages, replace the dead and the stuck, and ping the rest."""
        now = time.monotonic()
        self.sequence += 1
        for index, child in enumerate(self.children):
            if child is None:
                continue
            try:
                while child.conn.poll():
                    message = child.conn.recv()
                    if isinstance(message, Ready):
                        child.ready, child.answered = True, now
                    elif isinstance(message, Pong):
                        child.answered = now
            except (EOFError, OSError):
                pass
            if not child.process.is_alive():
                log.error("worker %d exited (%s, pid %s); starting it again", index, child.process.exitcode,
                          child.process.pid)
            elif child.ready and now - child.answered > WORKER_TIMEOUT:
                log.error("worker %d (pid %s) has not answered for %.1fs; replacing it", index, child.process.pid,
                          now - child.answered)
                child.process.kill()
                child.process.join(5)
            else:
                try:
                    child.conn.send(Ping(self.sequence))
                except OSError:
                    pass
                continue
            child.conn.close()
            self.start(index)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.watch()
            if all(c is not None and c.ready for c in self.children):
                return True
            time.sleep(0.05)
        return False

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
                self.watch()
                try:
                    await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
                except TimeoutError:
                    pass
        finally:
            log.info("shutting down %d workers", len(self.children))
            if web is not None:
                await web.stop()
            if health is not None:
                await health.stop()
            self.stop_children()

    def stop_children(self) -> None:
        for child in self.children:
            if child is not None and child.process.is_alive():
                child.process.terminate()
        for child in self.children:
            if child is not None:
                child.process.join(5)
                if child.process.is_alive():
                    child.process.kill()

    def _sighup(self) -> None:
        problems = self.balancer.reload(self.config_dir)
        record_reload(self.balancer.state, problems, self.balancer.generation)
        if not any(p.severity is Severity.ERROR for p in problems):  # refused: the workers keep theirs
            self.notify()


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


def serve_supervised(balancer: Balancer, listen: list[str], config_dir: Path, count: int,
                     status_listen: str | None = None) -> int:
    concrete, held = _concrete(listen)
    supervisor = Supervisor(balancer, config_dir, concrete, count, status_listen)
    supervisor.held = held
    for index in range(count):
        supervisor.start(index)
    # The workers have their own sockets on these ports once ready; ours would only take a share of queries.
    ready = supervisor.wait_ready(START_TIMEOUT)
    for sock in held:
        sock.close()
    supervisor.held = []
    if not ready:
        log.error("workers did not start")
        supervisor.stop_children()
        return 1
    for item in concrete:
        log.info("serving %s on %s (udp, tcp) with %d workers", balancer.config.settings.zone, item, count)
    run(supervisor.run())
    return 0
