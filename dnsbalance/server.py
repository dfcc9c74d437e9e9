"""asyncio UDP and TCP listeners around a Balancer.

TCP is length-framed (RFC 1035 4.2.2), several queries per connection (RFC 7766), closed when idle.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from dnsbalance.balancer import Balancer
from dnsbalance.configuration.names import parse_hostport
from dnsbalance.scheduling import HealthScheduler

log = logging.getLogger(__name__)
UDP_BUFFER = 4 << 20  # requested receive buffer; the kernel caps it at net.core.rmem_max


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        reply = self.balancer.handle(data, addr[0], tcp=False)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)  # e.g. ICMP port unreachable from a vanished client


class TcpProtocol(asyncio.Protocol):
    """One TCP client. Connections are kept in order of last activity: past `max_connections` the one idle
    longest is closed, so a flood of idle connections cannot lock out real clients; a connection with no
    complete query for `idle_timeout` seconds is closed (a sender of a byte a minute included)."""

    active: "OrderedDict[TcpProtocol, None]" = OrderedDict()

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        TcpProtocol.active[self] = None
        limit = self.balancer.config.settings.tcp.max_connections
        while len(TcpProtocol.active) > limit:
            oldest, _ = TcpProtocol.active.popitem(last=False)
            log.debug("TCP connection limit %d reached; closing the one idle longest (%s)", limit, oldest.peer)
            oldest.close()
        self._arm()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        timeout = self.balancer.config.settings.tcp.idle_timeout
        self.timer = asyncio.get_running_loop().call_later(timeout, self.close)
        if self in TcpProtocol.active:
            TcpProtocol.active.move_to_end(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 2:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                break  # wait for the rest; the idle timer ends a sender that never finishes
            packet = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            self._arm()
            reply = self.balancer.handle(packet, self.peer, tcp=True)
            if reply is None:
                continue
            assert self.transport is not None
            self.transport.write(len(reply).to_bytes(2, "big") + reply)

    def connection_lost(self, exc: Exception | None) -> None:
        TcpProtocol.active.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()


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


async def serve(balancer: Balancer, listen: list[str], config_dir: Path, worker: bool = False,
                ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads the configuration.

    `worker`: one of several processes on the same ports (SO_REUSEPORT). It runs no prober: the supervisor
    (workers.py) probes, saves the health state, and sends SIGUSR1, on which the worker rebuilds its table."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.AbstractServer] = []
    transports: list[asyncio.BaseTransport] = []
    for item in listen:
        host, port = parse_hostport(item)
        udp, tcp = bind_pair(host, port, reuse_port=worker)
        transport, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(balancer), sock=udp)
        transports.append(transport)
        servers.append(await loop.create_server(lambda: TcpProtocol(balancer), sock=tcp))
        bound = udp.getsockname()
        shown = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"
        if not worker:
            log.info("serving %s on %s (udp, tcp)", balancer.config.settings.zone, shown)

    if ready is not None:
        ready()
    health: HealthScheduler | None = None
    if worker:
        loop.add_signal_handler(signal.SIGUSR1, lambda: balancer.refresh(config_dir))
    elif balancer.config.settings.health.enabled:
        health = HealthScheduler(balancer, config_dir)
        health.start()
    else:
        log.info("health checks are off (health.enabled: false): every configured entry counts as usable")

    def reload() -> None:
        balancer.reload(config_dir)
        if health is not None:
            health.reschedule()

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if health is not None:
            await health.stop()
        for server in servers:
            server.close()
        for transport in transports:
            transport.close()
