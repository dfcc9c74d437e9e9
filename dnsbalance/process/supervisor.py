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
import socket
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING

from dnsbalance.answer import native
from dnsbalance.configuration.names import parse_hostport
from dnsbalance.configuration.problems import Severity
from dnsbalance.configuration.reading import stop_reading
from dnsbalance.dnssec.timing import RESIGN_CHECK
from dnsbalance.ops.status_document import InstanceInfo
from dnsbalance.ops.web import start_status
from dnsbalance.process.answerer import (
    DRAIN,
    Closable,
    Counts,
    Flush,
    Flushed,
    Ping,
    Pong,
    Ready,
    Retire,
    Sockets,
    Start,
    Started,
    Stopped,
    answerer_main,
)
from dnsbalance.process.background import in_build_thread
from dnsbalance.process.draining import DrainFollower
from dnsbalance.process.instance import record_reload, reload_requester, write_identity
from dnsbalance.process.scheduling import HealthScheduler
from dnsbalance.protocol.addresses import host_port
from dnsbalance.server import bind_pair, save_counters
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.snapshot import Serving

if TYPE_CHECKING:  # imported when used: only a signed cluster follows keys
    from dnsbalance.cluster.keystore import KeyFollower
    from dnsbalance.configuration.model import ClusterSettings

log = logging.getLogger(__name__)
WATCH_INTERVAL = 0.5  # seconds between pings
SIGNATURE_CHECK = RESIGN_CHECK  # seconds between checks that the signatures in service are not due for refresh
WORKER_TIMEOUT = 3.0  # seconds an answerer may leave a ping unanswered before it is replaced
START_TIMEOUT = 60.0  # seconds for the first answerers to report ready
STOP_TIMEOUT = 5.0  # seconds for a retired answerer to stop reading (it needs RECEIVE_TIMEOUT when idle)
START_PRECOMPUTE = 2.0  # seconds of precomputing answers before the first fork; the rest follows in service
BACKGROUND_NICE = 10  # the supervisor's worker threads (builds, pages, saves) yield a busy CPU to the answerers


def lower_priority() -> None:
    """Run in each of the supervisor's worker threads: on Linux a nice value is per thread, so the
    event loop (pings, hand-overs; the fork, which the answerers inherit their priority from) keeps its
    own. Raising one's nice value needs no privilege."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except OSError:
        pass


@dataclass
class Answerer:
    slot: int
    process: BaseProcess
    conn: Connection
    # The snapshot it was forked with, weakly: a strong reference would keep the previous table alive in
    # the supervisor while the next generation is forked, and every answerer would carry a dead table.
    serving: weakref.ref[Serving]
    ready: bool = False
    started: bool = False
    stopped: bool = False
    waiting_since: float | None = None  # monotonic time of the oldest unanswered ping
    retired_at: float | None = None


def wake_soon(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    """From another thread: set `event` on `loop` (nothing once the loop has closed, at a stop)."""
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:
        pass


@dataclass
class Supervisor:
    balancer: Balancer
    config_dir: Path
    slots: list[Sockets]
    shown: list[str]  # the bound addresses, for the log
    status_socket: socket.socket | None = None  # bound before the start, so that a port in use stops it
    held: list[Closable] = field(default_factory=list)  # what answerers must not keep open (the instance lock)
    current: list[Answerer | None] = field(default_factory=list)
    pending: list[Answerer] = field(default_factory=list)  # forked, not yet in service
    retiring: list[Answerer] = field(default_factory=list)
    sequence: int = 0

    def __post_init__(self) -> None:
        self.context = multiprocessing.get_context("fork")
        self.current = [None] * len(self.slots)
        self.building = asyncio.Lock()  # one reload or rebuild at a time
        self.swapping = asyncio.Lock()  # one change of answerers at a time
        self.health: HealthScheduler | None = None
        self.replacing = False  # an answerer died: fork its slot again
        self.reload_waiting = False  # a SIGHUP's reload waits for the build under way
        # The answerers' pipes are read and written by the event loop (watch) and by the status page's
        # thread (flush): one at a time.
        self.pipes = threading.Lock()
        self.drains = DrainFollower(self.balancer)  # operators' drains: state_dir/drains.json, watched
        self.draining = False  # a drain's new generation is on its way
        self.keys: "KeyFollower | None" = None  # with `cluster:` and signing (cluster/keystore.py)
        self.rekeying = False  # a new key set's generation is on its way
        self.keys_for: tuple[ClusterSettings, Path] | None = None  # what the key follower was made for
        self.wake: Callable[[], None] = lambda: None  # the main loop's: look now (set when it runs)

    def everyone(self) -> list[Answerer]:
        return [a for a in (*self.current, *self.pending, *self.retiring) if a is not None]

    def in_service(self) -> bool:
        serving = self.balancer.serving
        return all(a is not None and a.serving() is serving and a.process.is_alive() for a in self.current)

    def fork(self, slot: int) -> Answerer:
        """A new answerer for `slot` with the snapshot in service now."""
        serving = self.balancer.serving
        ours, theirs = self.context.Pipe()
        inherited: list[Closable] = [a.conn for a in self.everyone()] + [ours, *self.held]
        if native.active():
            serving.fast.native.ready()  # the native answer table, here so that every answerer shares it
        gc.freeze()  # the child's collector leaves everything allocated before the fork alone
        try:
            pipeline = self.balancer.pipeline.pinned(serving)  # the child answers from this generation alone
            process = self.context.Process(target=answerer_main, name=f"dnsbalance-answer-{slot}", daemon=True,
                                           args=(theirs, pipeline, self.slots[slot], inherited, os.getpid()))
            process.start()
        finally:
            gc.unfreeze()
        theirs.close()
        return Answerer(slot, process, ours, weakref.ref(serving))

    async def refresh_signatures(self) -> None:
        """DNSSEC: a new table (same content, a new signature window) once less than `refresh` is left on the
        signatures in service, even when no health verdict changes and health checks are off."""
        while True:
            await asyncio.sleep(SIGNATURE_CHECK)
            if not self.balancer.signatures_due(time.time()):
                continue
            async with self.building:
                await in_build_thread(self.balancer.regenerate)
            log.info("DNSSEC signatures refreshed before expiry (table generation %d)", self.balancer.generation)
            await self.put_in_service()

    async def put_in_service(self) -> None:
        """Fork answerers with the table in service now and hand each slot over to its new answerer: the
        new one starts reading, then the old one stops (for the moment both read, each datagram and
        connection still goes to one of them and is answered by one table; stopping first would leave
        queries waiting in the kernel for two process wake-ups on a busy machine). Returns once every
        slot answers from this table alone, or a newer one is on its way."""
        async with self.swapping:
            serving = self.balancer.serving
            if self.in_service():
                return
            fresh = [self.fork(slot) for slot in range(len(self.slots))]
            self.pending += fresh
            try:
                for new in fresh:
                    if not await self._until(new, "ready", START_TIMEOUT):
                        log.error("worker %d (pid %s) did not start; keeping the one in service", new.slot,
                                  new.process.pid)
                        new.process.kill()
                        continue
                    self._send(new, Start())
                    if not await self._until(new, "started", 10.0):
                        log.error("worker %d (pid %s) did not start reading; keeping the one in service",
                                  new.slot, new.process.pid)
                        new.process.kill()
                        continue
                    old, self.current[new.slot] = self.current[new.slot], new
                    if old is not None:
                        self._retire(old)
                        if await self._until(old, "stopped", STOP_TIMEOUT):
                            pass
                        elif old.process.is_alive():
                            log.warning("worker %d (pid %s) did not stop reading within %gs; killed (its last "
                                        "second of counts is lost)", old.slot, old.process.pid, STOP_TIMEOUT)
                            old.process.kill()
                        else:
                            log.warning("worker %d (pid %s) exited (%s) before it said it had stopped reading",
                                        old.slot, old.process.pid, old.process.exitcode)
            finally:
                self.pending = [a for a in self.pending if a not in fresh]
            if self.balancer.serving is not serving:
                log.debug("a newer table was built while this one went into service")
            elif self.in_service():  # what `dnsbalance drain` waits for: every answerer on this generation
                await asyncio.to_thread(self.balancer.mark_in_service, serving)

    async def _until(self, answerer: Answerer, flag: str, timeout: float) -> bool:
        """Wait for the answerer to say `flag` (ready, started, stopped); False past `timeout`, or when it
        has exited without saying it."""
        deadline = time.monotonic() + timeout
        while not getattr(answerer, flag):
            if time.monotonic() > deadline or not answerer.process.is_alive():
                # What it said before it exited is still in the pipe: a retired answerer stops, sends its
                # last counts and exits, all between two of our looks when this process is slow.
                with self.pipes:
                    self._read(answerer)
                return bool(getattr(answerer, flag))
            with self.pipes:
                self._read(answerer)
            if not getattr(answerer, flag):
                await asyncio.sleep(0.002)
        return True

    def _send(self, answerer: Answerer, message: object) -> None:
        with self.pipes:
            try:
                answerer.conn.send(message)
            except OSError:
                pass

    def _retire(self, answerer: Answerer) -> None:
        answerer.retired_at = time.monotonic()
        self._send(answerer, Retire())
        self.retiring.append(answerer)

    def _read(self, answerer: Answerer, until: int | None = None, timeout: float = 0.0) -> None:
        """Take what the answerer sent; with `until`, wait (up to `timeout`) for Flushed(until)."""
        deadline = time.monotonic() + timeout
        try:
            while answerer.conn.poll(max(0.0, deadline - time.monotonic()) if until is not None else 0):
                message = answerer.conn.recv()
                if isinstance(message, Flushed) and message.token == until:
                    return
                if isinstance(message, Counts):
                    self.balancer.stats.absorb(message.totals)
                elif isinstance(message, Pong):
                    answerer.waiting_since = None
                elif isinstance(message, Ready):
                    answerer.ready = True
                elif isinstance(message, Started):
                    answerer.started = True
                elif isinstance(message, Stopped):
                    answerer.stopped = True
        except (EOFError, OSError):
            pass

    def flush(self, timeout: float = 0.5) -> None:
        """Have every answerer's counts added up now: the status page and /metrics show the queries
        answered up to the moment they were asked for, not up to a second before."""
        with self.pipes:
            self.sequence += 1
            token = self.sequence
            asked = []
            for answerer in [a for a in (*self.current, *self.retiring) if a is not None]:
                try:
                    answerer.conn.send(Flush(token))
                    asked.append(answerer)
                except OSError:  # a retired answerer already gone: its last counts wait in the pipe
                    self._read(answerer)
            deadline = time.monotonic() + timeout
            for answerer in asked:
                self._read(answerer, until=token, timeout=max(0.0, deadline - time.monotonic()))

    def watch(self) -> None:
        with self.pipes:
            self._watch()

    def _watch(self) -> None:
        """Read every answerer's messages; put ready ones in service; replace the dead and the stuck; ping."""
        now = time.monotonic()
        self.sequence += 1
        for each in self.everyone():
            self._read(each)
        for old in list(self.retiring):
            if not old.process.is_alive():
                old.process.join(0)
                self._read(old)  # what it sent before it exited: its last counts
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
            self.replacing = True

    async def rebuild(self, work: str) -> None:
        """A reload ("reload") or the rest of the first table's answers ("complete"), on a thread so that
        the status page and the pings go on; then the next generation of answerers. "replace": only
        answerers for slots whose answerer died."""
        if work == "replace":
            await self.put_in_service()
            return
        if work == "drains":
            try:
                async with self.building:
                    if not await in_build_thread(self.drains.apply):
                        return
            finally:
                self.draining = False
            await self.put_in_service()
            log.info("drains in service (table generation %d)", self.balancer.generation)
            return
        if work == "keys":
            assert self.keys is not None
            try:
                async with self.building:
                    self.keys.due.clear()  # a copy written from now on asks for another build
                    await in_build_thread(self.balancer.regenerate, True)
            finally:
                self.rekeying = False
            await self.put_in_service()
            log.info("DNSSEC: the cluster's keys in service (table generation %d)", self.balancer.generation)
            return
        if work == "reload":
            self.reload_waiting = True
        async with self.building:
            if work == "reload":
                self.reload_waiting = False
                problems = await in_build_thread(self.balancer.reload, self.config_dir,
                                                 reload_requester(self.balancer.state))
                if any(p.severity is Severity.ERROR for p in problems):
                    record_reload(self.balancer.state, problems, self.balancer.generation)
                    return  # refused: the answerers keep theirs
                if self.health is not None:
                    self.health.reschedule()
            elif not await in_build_thread(self.balancer.complete):
                return  # nothing was left to compute
        await self.put_in_service()
        if work == "reload":
            self.follow_keys()  # other cluster settings, key folder or signing: a follower for them
            record_reload(self.balancer.state, problems, self.balancer.generation)
            log.info("configuration reloaded from %s (table generation %d in service)", self.config_dir,
                     self.balancer.generation)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="dnsbalance-background",
                                                     initializer=lower_priority))
        stop = asyncio.Event()
        woken = asyncio.Event()  # look now, not at the next WATCH_INTERVAL: a stop, the cluster's drains written

        def halt() -> None:
            stop.set()
            woken.set()
        loop.add_signal_handler(signal.SIGTERM, halt)
        loop.add_signal_handler(signal.SIGINT, halt)
        tasks: set[asyncio.Task[None]] = set()

        def later(work: str) -> None:
            if work == "reload" and self.reload_waiting:
                return  # a reload not yet begun will read the files as they are then: one is enough
            task = asyncio.create_task(self.rebuild(work))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, lambda: later("reload"))
        await self.put_in_service()
        if not self.in_service():
            log.error("answering processes did not start")
            self.stop_all()
            return 1
        workers = f" with {len(self.slots)} workers" if len(self.slots) > 1 else ""
        for shown in self.shown:
            log.info("serving %s on %s (udp, tcp)%s", self.balancer.config.settings.zone, shown, workers)
        path = native.describe()
        log.info("UDP fast path: %s (%s)", path["path"], path["why"])
        health = None
        if self.balancer.config.settings.health.enabled:
            health = self.health = HealthScheduler(self.balancer, self.config_dir, on_change=self.put_in_service,
                                                   lock=self.building)
            health.start()
        else:
            log.info("health checks are off (health.enabled: false): every configured entry counts as usable")
        shared_drains = None
        cluster = self.balancer.config.settings.cluster
        if cluster is not None:  # every name server follows etcd's drains into its own drains file
            from dnsbalance.cluster.drains import DrainFollower as ClusterDrains

            # through the health member's watch when it streams (no polling), else by reads of their own
            shared_drains = ClusterDrains(cluster, self.balancer.state.drains, self.balancer.state.operations,
                                          watched=lambda: health.watched(cluster.prefix) if health else None,
                                          written=lambda: wake_soon(loop, woken))
            if health is not None:
                health.listeners.append(shared_drains.wake)
            shared_drains.start()
        self.wake = lambda: wake_soon(loop, woken)
        self.follow_keys()
        later("complete")
        identity = self.identity()
        web = await start_status(self.balancer, self.status_socket, identity, refresh=self.flush,
                                 setup=lower_priority)
        write_identity(self.balancer.state, identity)
        saver = asyncio.create_task(save_counters(self.balancer.stats))
        resigner = asyncio.create_task(self.refresh_signatures())
        try:
            while not stop.is_set():
                self.watch()
                if self.replacing and not self.swapping.locked():
                    self.replacing = False
                    later("replace")
                if not self.draining and self.drains.due(time.time()):
                    self.draining = True
                    later("drains")
                if self.keys is not None and not self.rekeying and self.keys.due.is_set():
                    self.rekeying = True
                    later("keys")
                try:
                    await asyncio.wait_for(woken.wait(), WATCH_INTERVAL)
                except TimeoutError:
                    pass
                woken.clear()
        finally:
            log.info("shutting down")
            stop_reading()  # a reload reading its files is abandoned, not waited for
            saver.cancel()
            resigner.cancel()
            if web is not None:
                await web.stop()
            if health is not None:
                await health.stop()
            if shared_drains is not None:
                shared_drains.stop()
            if self.keys is not None:
                self.keys.stop()
            self.stop_all()
            with self.pipes:
                for answerer in self.everyone():
                    self._read(answerer)  # their last counts
            self.balancer.stats.save()
        return 0

    def follow_keys(self) -> None:
        """With `cluster:` and signing: the cluster's DNSSEC keys followed into the key folder as they change
        (another server's rollover step, cluster/keystore.py), through the health member's watch when it streams.
        Called at start and after each applied reload: a follower of other cluster settings or another key folder
        is replaced."""
        settings = self.balancer.config.settings
        wanted = (settings.cluster, settings.key_dir) if settings.cluster is not None and self.balancer.signing \
            and settings.dnssec.sign else None
        if wanted == self.keys_for:
            return
        if self.keys is not None:
            self.keys.stop()
            if self.health is not None and self.keys.wake in self.health.listeners:
                self.health.listeners.remove(self.keys.wake)
            self.keys = None
        self.keys_for = wanted
        if wanted is None:
            return
        from dnsbalance.cluster.keystore import KeyFollower

        cluster, directory = wanted
        health = self.health
        self.keys = KeyFollower(cluster, directory, watched=lambda: health.watched(cluster.prefix) if health else None,
                                changed=self.wake)
        if health is not None:
            health.listeners.append(self.keys.wake)
        self.keys.start()

    def identity(self) -> InstanceInfo:
        """Which instance this is, for its status page and JSON and for `dnsbalance status` (instance.json):
        several instances on one host each default to the same status port, so the page says whose it is."""
        settings = self.balancer.config.settings
        status = None
        if self.status_socket is not None:
            host, port = self.status_socket.getsockname()[:2]
            status = host_port(host, port)
        return InstanceInfo(zone=settings.zone, config=str(self.config_dir.absolute()),
                            state_dir=str(self.balancer.state.root.absolute()), listen=list(self.shown),
                            status=status, pid=os.getpid(),
                            name=settings.cluster.instance if settings.cluster is not None else None,
                            started=time.time())

    def stop_all(self, timeout: float = 5.0) -> None:
        """SIGTERM to every answerer, reading their pipes while they end: an answerer's last counts can be
        more than a pipe holds, and one left blocked writing them was killed after 5 s with them lost."""
        everyone = self.everyone()
        for answerer in everyone:
            if answerer.process.is_alive():
                answerer.process.terminate()
        deadline = time.monotonic() + timeout
        while any(a.process.is_alive() for a in everyone) and time.monotonic() < deadline:
            with self.pipes:
                for answerer in everyone:
                    self._read(answerer)
            time.sleep(0.01)
        for answerer in everyone:
            if answerer.process.is_alive():
                answerer.process.kill()
            answerer.process.join(1)


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
            shown.append(host_port(host, port))
    except BaseException:
        for udps, tcps in slots:
            for sock in (*udps, *tcps):
                sock.close()
        raise
    return [Sockets(tuple(udps), tuple(tcps)) for udps, tcps in slots], shown


def serve(balancer: Balancer, listen: list[str], config_dir: Path, count: int, status_socket: socket.socket | None,
          held: list[Closable]) -> int:
    from dnsbalance.server import run

    slots, shown = bind_slots(listen, count)
    if status_socket is not None:
        held = [*held, status_socket]  # the answerers close their copy: only the supervisor serves the page
    supervisor = Supervisor(balancer, config_dir, slots, shown, status_socket, held)
    result = [1]

    async def main() -> None:
        result[0] = await supervisor.run()

    run(main())
    return result[0]
