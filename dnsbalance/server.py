"""The listeners around an answer pipeline: a thread per UDP socket, asyncio for TCP, and the event loop
they run on. They only move bytes: every answer is the pipeline's (pipeline/). The process roles (process/) decide what
else runs beside them.

TCP is length-framed (RFC 1035 4.2.2), several queries per connection (RFC 7766), closed when idle.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from dnsbalance import udpio
from dnsbalance.answer import native
from dnsbalance.pipeline.pipeline import Pipeline
from dnsbalance.serving.snapshot import Serving
from dnsbalance.stats.counters import LATENCY_SAMPLE, QueryStats

log = logging.getLogger(__name__)
COUNTER_INTERVAL = 5.0  # seconds between writes of the query counters
UDP_BUFFER = 4 << 20  # requested receive buffer; the kernel caps it at net.core.rmem_max
WRITE_HIGH = 64 << 10  # unread replies buffered per TCP connection before it is no longer read
# A blocked receive returns after this long without a datagram (SO_RCVTIMEO: no extra system call per
# query), so that a retired answering process stops reading promptly even when the socket is idle.
RECEIVE_TIMEOUT = 0.1


class UdpThread:
    """UDP answered by a thread in a plain blocking loop: receive a batch (one datagram when the load is
    light, every waiting one when it is not), answer each, send the replies (udpio: recvmmsg/sendmmsg, each
    reply from the address asked). Per query this costs less than an event loop's callback machinery; the
    GIL is released while the receive blocks, so the event loop (TCP, health cycles, signals) still runs
    whenever the socket is idle."""

    def __init__(self, pipeline: Pipeline, sock: socket.socket) -> None:
        self.pipeline = pipeline
        self.sock = sock
        self.sock.setblocking(True)
        seconds = int(RECEIVE_TIMEOUT)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack("ll", seconds, int((RECEIVE_TIMEOUT - seconds) * 1e6)))
        self.native = native.active()  # the native fast path (answer/native.py), when built and not switched off
        self.feeding: native.NativePath | None = None  # whose native counts join the pipeline's counters
        self.datagrams = udpio.Datagrams(sock, native=self.native)
        self.running = True
        self.thread = threading.Thread(target=self._loop, name=f"udp-{sock.getsockname()[:2]}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        udpio.precise_sleeps()
        receive, send, pipeline = self.datagrams.receive, self.datagrams.send, self.pipeline
        handle, rng, source = pipeline.handle, pipeline.rng, pipeline.source
        stats, clock, sample, started = pipeline.stats, time.perf_counter, 0, 0.0
        current: Serving | None = None
        fast: Callable[..., bytes | None] | None = None
        tried = False
        locate: Callable[..., Any] | None = None
        serve_native = self.datagrams.serve
        shapes: Any = None  # the native shapes of the snapshot in service; None: the Python path
        known: Callable[[bytes, str, Callable[[], float]], bytes | bool | None] | None = None
        fallback: Callable[[bytes, str, bool], bytes | None] | None = None
        while self.running:
            if shapes is not None:
                try:
                    served = serve_native(shapes, rng.random, fallback)
                except OSError as exc:
                    if not self.running:
                        return
                    log.debug("UDP receive error: %s", exc)
                    continue
                except Exception:  # noqa: BLE001  # never expected: the batch is lost, the thread answers on
                    log.exception("the native fast path failed on a batch")
                    continue
                if served is not None:  # a batch received, answered and sent by the native path
                    count, answered, seconds = served
                    stats.udp += count
                    if answered:
                        stats.events["native"] = stats.events.get("native", 0) + answered
                    sample += count
                    while sample >= LATENCY_SAMPLE:  # the batch's answering time, an upper bound of each's
                        sample -= LATENCY_SAMPLE
                        stats.observe(seconds)
                    if source() is not current:
                        shapes = None  # bound again below, at the next batch
                    continue
            try:
                batch = receive()
            except BlockingIOError:
                continue  # the receive timeout: look at self.running again
            except OSError as exc:
                if not self.running:
                    return
                log.debug("UDP receive error: %s", exc)
                continue
            stats.udp += len(batch)
            serving = source()  # read once per batch
            if serving is not current:  # a new snapshot: bind its fast path once, not per query
                current = serving
                # with RRL on, the pipeline checks the limiter between the fast path's lookup and its reply
                fast = None if serving.limiter is not None else serving.fast.answer
                tried = fast is not None
                locate = serving.locator.locate
                shapes = known = fallback = None
                if self.native and fast is not None:
                    shapes, fallback = self._bind_native(serving)
                    known = shapes.answer
            replies: list[bytes | None] = []
            natively = 0
            for data, host in batch:
                sample += 1
                if sample == LATENCY_SAMPLE:  # one query in LATENCY_SAMPLE is timed: two clock reads cost ~100 ns
                    started = clock()
                reply = None
                if fallback is not None:  # the native path, then the Python one (a shape it has not seen)
                    try:
                        reply = known(data, host, rng.random)  # type: ignore[misc]
                    except Exception:  # noqa: BLE001  # never expected; the Python path answers it
                        log.exception("the native fast path failed on a query from %s", host)
                        reply = None
                    if not reply:  # None: a shape not known; False: one not known that missed before
                        reply = fallback(data, host, reply is False)
                    else:
                        natively += 1
                elif fast is not None:  # the common case straight to the fast path; handle() does the rest
                    try:
                        reply = fast(data, host, locate, rng, False, stats)
                    except Exception:  # noqa: BLE001  # handle() asks it again, and logs what went wrong
                        reply = handle(data, host, False, serving)
                if reply is None and fallback is None:
                    reply = handle(data, host, False, serving, tried)
                if sample == LATENCY_SAMPLE:
                    sample = 0
                    stats.observe(clock() - started)
                replies.append(reply)
            send(replies)
            if natively:
                stats.events["native"] = stats.events.get("native", 0) + natively

    def _bind_native(self, serving: Serving) -> tuple[Any, Callable[[bytes, str, bool], bytes | None]]:
        """The native shapes of a snapshot, and what answers the datagrams they do not know: the Python fast
        path (whose prepared reply the shapes then learn), else the pipeline's stages."""
        pipeline = self.pipeline
        handle, rng, stats = pipeline.handle, pipeline.rng, pipeline.stats
        path = serving.fast.native
        shapes = path.process_shapes()
        if self.feeding is not None and self.feeding is not path:  # the previous snapshot's counts, then let it go
            self.feeding.drain_into(stats)
            stats.feeders.pop(id(self.feeding), None)
        self.feeding = path
        stats.feeders[id(path)] = path.drain_into  # its counts join the others at each fold
        lookup, locate, learn = serving.fast.lookup, serving.locator.locate, path.learn

        def fallback(data: bytes, host: str, repeated: bool) -> bytes | None:
            """`repeated`: the native shapes missed this shape before (in any letter case)."""
            try:
                prepared = lookup(data, host, locate, False, stats)
            except Exception:  # noqa: BLE001  # handle() asks it again, and logs what went wrong
                return handle(data, host, False, serving)
            if prepared is None:
                return handle(data, host, False, serving, True)
            reply = prepared.reply(data[:2], rng, stats)
            if repeated:  # learnt at its second sight: a flood of shapes seen once costs no learning
                try:
                    learn(data, host, prepared)
                except Exception:  # noqa: BLE001  # the Python path keeps answering this shape
                    log.exception("the native fast path could not learn a query's reply from %s", host)
            return reply

        return shapes, fallback

    def retire(self) -> None:
        """End the loop within RECEIVE_TIMEOUT (after answering a datagram it already has), without
        touching the socket: it is shared with the next generation's answerer."""
        self.running = False

    def settle(self, timeout: float) -> None:
        """Let a datagram already received be answered before the process ends."""
        self.thread.join(timeout)


class TcpProtocol(asyncio.Protocol):
    """One TCP client. Connections are kept in order of last activity: past `max_connections` the one idle
    longest is closed, so a flood of idle connections cannot lock out real clients; a connection with no
    complete query for `idle_timeout` seconds is closed (a sender of a byte a minute included).

    Back-pressure: a client that sends queries but does not read the replies fills our write buffer; past
    WRITE_HIGH bytes the connection is no longer read (its queries wait in the kernel, not in our memory),
    and since no query is then answered the idle timer ends it, discarding what it never read."""

    active: ClassVar[OrderedDict[TcpProtocol, None]] = OrderedDict()

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False  # the client is not reading its replies

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        transport.set_write_buffer_limits(high=WRITE_HIGH)  # type: ignore[attr-defined]
        TcpProtocol.active[self] = None
        limit = self.pipeline.config.settings.tcp.max_connections
        while len(TcpProtocol.active) > limit:
            oldest, _ = TcpProtocol.active.popitem(last=False)
            log.debug("TCP connection limit %d reached; closing the one idle longest (%s)", limit, oldest.peer)
            oldest.close()
        self._arm()

    def close(self) -> None:
        if self.transport is not None:
            if self.paused:
                self.transport.abort()  # close() would wait for replies the client never reads
            else:
                self.transport.close()

    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self.data_received(b"")  # the queries already read while paused

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        timeout = self.pipeline.config.settings.tcp.idle_timeout
        self.timer = asyncio.get_running_loop().call_later(timeout, self.close)
        if self in TcpProtocol.active:
            TcpProtocol.active.move_to_end(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 2 and not self.paused:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                break  # wait for the rest; the idle timer ends a sender that never finishes
            packet = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            self._arm()
            stats = self.pipeline.stats
            timed = stats.tcp % LATENCY_SAMPLE == 0  # handle() counts this query
            started = time.perf_counter() if timed else 0.0
            reply = self.pipeline.handle(packet, self.peer, tcp=True)
            if timed:
                stats.observe(time.perf_counter() - started)
            if reply is None:
                continue
            assert self.transport is not None
            self.transport.write(len(reply).to_bytes(2, "big") + reply)

    def connection_lost(self, exc: Exception | None) -> None:
        TcpProtocol.active.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()


async def save_counters(stats: QueryStats) -> None:
    """Write the query counters to the state folder every few seconds, for the status page, the metrics
    of a supervisor and `dnsbalance stats`; on a thread, so the event loop (TCP, status) never waits on it."""
    while True:
        await asyncio.sleep(COUNTER_INTERVAL)
        await asyncio.to_thread(stats.save)


def bind_pair(host: str, port: int, reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same port; with port 0, a free port that both can have.
    `reuse_port`: several processes bind the same port and the kernel spreads queries among them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                for s in (udp, tcp):
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                for s in (udp, tcp):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)  # absorb bursts
            if udpio.is_wildcard(host):  # replies must leave from each query's destination address
                udpio.want_destination(udp)
            udp.bind((host, port))
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(128)
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        except OSError as exc:
            udp.close()
            tcp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free port on {host} for both UDP and TCP")


def run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed: its TCP handling costs a fraction of the stock loop's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
