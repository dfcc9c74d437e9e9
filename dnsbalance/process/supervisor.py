"""The supervisor: everything but answering. It reads the configuration, probes the mirrors, builds every
table (and precomputes its answers), serves the status page and keeps the counters; answering processes
(process/answerer.py) are forked from it with a finished table, one per slot: `serve` has one slot,
`serve --workers N` has N, each with its own SO_REUSEPORT sockets so that the kernel spreads queries.

Why processes: building a big table takes seconds of Python, and in one process those seconds would hold
the GIL between a query's arrival and its answer. Here a new table is built beside the answerers, which
keep answering from the previous table until the supervisor forks the next generation and retires the old
(see answerer.py for the hand-over). The supervisor pings every answerer each half second: one that exits,
or does not answer for WORKER_TIMEOUT, is logged, killed and forked again from the current table.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from dnsbalance.configuration.names import parse_hostport
from dnsbalance.configuration.problems import Severity
from dnsbalance.ops.web import start_status
from dnsbalance.process.answerer import DRAIN, Closable, Counts, Ping, Pong, Ready, Retire, Sockets, answerer_main
from dnsbalance.process.instance import record_reload
from dnsbalance.process.scheduling import HealthScheduler
from dnsbalance.server import bind_pair, save_counters
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.snapshot import Serving

log = logging.getLogger(__name__)
WATCH_INTERVAL = 0.5  # seconds between pings
WORKER_TIMEOUT = 3.0  # seconds an answerer may leave a ping unanswered before it is replaced
START_TIMEOUT = 60.0  # seconds for the first answerers to report ready
START_PRECOMPUTE = 2.0  # seconds of precomputing answers before the first fork; the rest follows in service


@dataclass
class Answerer:
    slot: int
    process: BaseProcess
    conn: Connection
    serving: Serving  # the snapshot it was forked with
    ready: bool = False
    waiting_since: float | None = None  # monotonic time of the oldest unanswered ping
    retired_at: float | None = None


@dataclass
class Supervisor:
    balancer: Balancer
    config_dir: Path
    slots: list[Sockets]
    shown: list[str]  # the bound addresses, for the log
    status_listen: str | None = None
    held: list[Closable] = field(default_factory=list)  # what answerers must not keep open (the instance lock)
    current: list[Answerer | None] = field(default_factory=list)
    pending: list[Answerer | None] = field(default_factory=list)
    retiring: list[Answerer] = field(default_factory=list)
    sequence: int = 0

    def __post_init__(self) -> None:
        self.context = multiprocessing.get_context("fork")
        self.current = [None] * len(self.slots)
        self.pending = [None] * len(self.slots)
        self.building = asyncio.Lock()  # one reload or rebuild at a time
        self.health: HealthScheduler | None = None

    def everyone(self) -> list[Answerer]:
        return [a for a in (*self.current, *self.pending, *self.retiring) if a is not None]

    def fork(self, slot: int) -> Answerer:
        """A new answerer for `slot` with the snapshot in service now."""
        serving = self.balancer.serving
        ours, theirs = self.context.Pipe()
        inherited: list[Closable] = [a.conn for a in self.everyone()] + [ours, *self.held]
        gc.freeze()  # the child's collector leaves everything allocated before the fork alone
        try:
            process = self.context.Process(target=answerer_main, name=f"dnsbalance-answer-{slot}", daemon=True,
                                           args=(theirs, self.balancer, self.slots[slot], inherited, os.getpid()))
            process.start()
        finally:
            gc.unfreeze()
        theirs.close()
        return Answerer(slot, process, ours, serving)

    def publish(self) -> None:
        """Fork the next generation for every slot; each replaces its slot's answerer once ready."""
        for slot in range(len(self.slots)):
            stale = self.pending[slot]
            if stale is not None:  # forked with a table already outdated: never put in service
                self._retire(stale)
            self.pending[slot] = self.fork(slot)

    def _retire(self, answerer: Answerer) -> None:
        answerer.retired_at = time.monotonic()
        try:
            answerer.conn.send(Retire())
        except OSError:
            pass
        self.retiring.append(answerer)

    def _read(self, answerer: Answerer) -> None:
        try:
            while answerer.conn.poll():
                message = answerer.conn.recv()
                if isinstance(message, Counts):
                    self.balancer.stats.absorb(message.totals)
                elif isinstance(message, Pong):
                    answerer.waiting_since = None
                elif isinstance(message, Ready):
                    answerer.ready = True
        except (EOFError, OSError):
            pass

    def watch(self) -> None:
        """Read every answerer's messages; put ready ones in service; replace the dead and the stuck; ping."""
        now = time.monotonic()
        self.sequence += 1
        for each in self.everyone():
            self._read(each)
        for slot, new in enumerate(self.pending):
            if new is not None and not new.ready and not new.process.is_alive():
                log.error("worker %d exited before it was ready (%s, pid %s); starting it again", slot,
                          new.process.exitcode, new.process.pid)
                new.conn.close()
                self.pending[slot] = new = self.fork(slot)
            if new is not None and new.ready:
                old = self.current[slot]
                self.current[slot], self.pending[slot] = new, None
                if old is not None:
                    self._retire(old)
        for old in list(self.retiring):
            if not old.process.is_alive():
                old.process.join(0)
                old.conn.close()
                self.retiring.remove(old)
            elif old.retired_at is not None and now - old.retired_at > DRAIN + 5:
                old.process.kill()
        for slot, answerer in enumerate(self.current):
            if answerer is None:
                continue
            if not answerer.process.is_alive():
                log.error("worker %d exited (%s, pid %s); starting it again", slot, answerer.process.exitcode,
                          answerer.process.pid)
            elif answerer.waiting_since is not None and now - answerer.waiting_since > WORKER_TIMEOUT:
                log.error("worker %d (pid %s) has not answered for %.1fs; replacing it", slot, answerer.process.pid,
                          now - answerer.waiting_since)
                answerer.process.kill()
                answerer.process.join(5)
            else:
                try:
                    answerer.conn.send(Ping(self.sequence))
                    if answerer.waiting_since is None:
                        answerer.waiting_since = now
                except OSError:
                    pass
                continue
            answerer.conn.close()
            self.current[slot] = None
            if self.pending[slot] is None:
                self.pending[slot] = self.fork(slot)

    async def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.watch()
            if all(a is not None for a in self.current):
                return True
            await asyncio.sleep(0.02)
        return False

    async def rebuild(self, work: str) -> None:
        """A reload ("reload") or the rest of the first table's answers ("complete"), on a thread so that
        the status page and the pings go on; then the next generation of answerers."""
        async with self.building:
            if work == "reload":
                problems = await asyncio.to_thread(self.balancer.reload, self.config_dir)
                record_reload(self.balancer.state, problems, self.balancer.generation)
                if any(p.severity is Severity.ERROR for p in problems):
                    return  # refused: the answerers keep theirs
                if self.health is not None:
                    self.health.reschedule()
            elif not await asyncio.to_thread(self.balancer.complete):
                return  # nothing was left to compute
        self.publish()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        tasks: set[asyncio.Task[None]] = set()

        def later(work: str) -> None:
            task = asyncio.create_task(self.rebuild(work))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, lambda: later("reload"))
        for slot in range(len(self.slots)):
            self.pending[slot] = self.fork(slot)
        if not await self.wait_ready(START_TIMEOUT):
            log.error("answering processes did not start")
            self.stop_all()
            return 1
        workers = f" with {len(self.slots)} workers" if len(self.slots) > 1 else ""
        for shown in self.shown:
            log.info("serving %s on %s (udp, tcp)%s", self.balancer.config.settings.zone, shown, workers)
        health = None
        if self.balancer.config.settings.health.enabled:
            health = self.health = HealthScheduler(self.balancer, self.config_dir, on_change=self.publish,
                                                   lock=self.building)
            health.start()
        else:
            log.info("health checks are off (health.enabled: false): every configured entry counts as usable")
        later("complete")
        web = await start_status(self.balancer, self.status_listen)
        saver = asyncio.create_task(save_counters(self.balancer))
        try:
            while not stop.is_set():
                self.watch()
                try:
                    await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
                except TimeoutError:
                    pass
        finally:
            log.info("shutting down")
            saver.cancel()
            if web is not None:
                await web.stop()
            if health is not None:
                await health.stop()
            self.stop_all()
            for answerer in self.everyone():
                self._read(answerer)  # their last counts
            self.balancer.stats.save()
        return 0

    def stop_all(self) -> None:
        everyone = self.everyone()
        for answerer in everyone:
            if answerer.process.is_alive():
                answerer.process.terminate()
        for answerer in everyone:
            answerer.process.join(5)
            if answerer.process.is_alive():
                answerer.process.kill()


def bind_slots(listen: list[str], count: int) -> tuple[list[Sockets], list[str]]:
    """Every slot's UDP and TCP sockets on every address; with several slots, SO_REUSEPORT sockets on one
    port (port 0 becomes the port the first slot was given)."""
    slots: list[tuple[list, list]] = [([], []) for _ in range(count)]
    shown = []
    try:
        for item in listen:
            host, port = parse_hostport(item)
            for index in range(count):
                udp, tcp = bind_pair(host, port, reuse_port=count > 1)
                port = udp.getsockname()[1]
                slots[index][0].append(udp)
                slots[index][1].append(tcp)
            shown.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except BaseException:
        for udps, tcps in slots:
            for sock in (*udps, *tcps):
                sock.close()
        raise
    return [Sockets(tuple(udps), tuple(tcps)) for udps, tcps in slots], shown


def serve(balancer: Balancer, listen: list[str], config_dir: Path, count: int, status_listen: str | None,
          held: list[Closable]) -> int:
    from dnsbalance.server import run

    slots, shown = bind_slots(listen, count)
    supervisor = Supervisor(balancer, config_dir, slots, shown, status_listen, held)
    result = [1]

    async def main() -> None:
        result[0] = await supervisor.run()

    run(main())
    return result[0]
