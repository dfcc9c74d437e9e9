"""Relay probes: a real STUN Binding over UDP, TCP or TLS, under one deadline per check.

`stun` and `turn-udp` ports get a Binding request over UDP (retransmitted, same transaction id);
`turn-tcp` a TCP connect and a Binding over the stream; `turn-tls` a TLS handshake and a Binding inside it.
"""
from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass

from dnsbalance.health.stun import (
    HEADER,
    StunError,
    binding_request,
    check_binding_success,
    reply_length,
)

RETRANSMIT = 0.5  # seconds between UDP retransmissions (RFC 5389 starts at 500 ms)


@dataclass(frozen=True)
class RelayCheck:
    address: str
    port: int
    service: str
    ok: bool
    detail: str
    latency: float


class _StunClient(asyncio.DatagramProtocol):
    def __init__(self, transaction_id: bytes) -> None:
        self.transaction_id = transaction_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _udp(address: str, port: int, transaction_id: bytes, source: str | None = None) -> bytes:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(lambda: _StunClient(transaction_id),
                                                           remote_addr=(address, port),
                                                           local_addr=(source, 0) if source else None)
    try:
        request = binding_request(transaction_id)
        while True:
            transport.sendto(request)
            done, _ = await asyncio.wait({client.reply}, timeout=RETRANSMIT)
            if done:
                return client.reply.result()
    finally:
        transport.close()


async def _stream(address: str, port: int, transaction_id: bytes, tls: bool, source: str | None = None) -> bytes:
    context = None
    if tls:
        # Relays are addressed by IP and often carry certificates for a name we do not know: the check is
        # that TLS is served and STUN answers inside it, not who signed the certificate.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(address, port, ssl=context,
                                                   local_addr=(source, 0) if source else None)
    try:
        writer.write(binding_request(transaction_id))
        await writer.drain()
        header = await reader.readexactly(HEADER.size)
        rest = reply_length(header) - HEADER.size
        if rest > 4096:
            raise StunError("reply announces more than 4 KiB")
        return header + await reader.readexactly(rest)
    finally:
        writer.close()


async def check(address: str, port: int, service: str, timeout: float, source: str | None = None) -> RelayCheck:
    """`source`: the local address the probe leaves from (health.source)."""
    transaction_id = os.urandom(12)
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            if service in ("stun", "turn-udp"):
                data = await _udp(address, port, transaction_id, source)
            else:
                data = await _stream(address, port, transaction_id, service == "turn-tls", source)
        mapped = check_binding_success(data, transaction_id)
        return RelayCheck(address, port, service, True, f"STUN Binding ok, mapped {mapped}",
                          time.monotonic() - started)
    except TimeoutError:
        detail = f"no STUN reply within {timeout:g}s"
    except StunError as exc:
        detail = str(exc)
    except asyncio.IncompleteReadError:
        detail = "connection closed before a full STUN reply"
    except ssl.SSLError as exc:
        detail = f"TLS handshake failed: {exc.reason or exc}"
    except OSError as exc:
        detail = f"cannot connect: {exc.strerror or exc}"
    return RelayCheck(address, port, service, False, detail, time.monotonic() - started)
