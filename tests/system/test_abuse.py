"""Abuse: response rate limiting with slip, TCP connection limits and idle timeouts, a byte-a-second client."""
from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.query
import pytest

from dnsbalance.answer.ratelimit import Action, RateLimiter
from dnsbalance.configuration.model import RRLSettings
from tests.harness import Server, make_config, start_server


def burst(server: Server, count: int, source: str = "127.0.0.1", cookie: bytes | None = None) -> dict[str, int]:
    """Send `count` queries back to back from one source, then collect: answers, TC replies, silences."""
    seen = {"answered": 0, "truncated": 0, "dropped": count}
    options = [dns.edns.CookieOption(b"abcdefgh", cookie)] if cookie is not None else None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for ident in range(count):
            query = dns.message.make_query("deb.cdn.example.org", "A", id=ident, use_edns=0, options=options)
            sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
        sock.settimeout(0.5)
        while True:
            try:
                reply = dns.message.from_wire(sock.recv(4096))
            except socket.timeout:
                return seen
            seen["dropped"] -= 1
            if reply.flags & dns.flags.TC:
                assert reply.answer == []
                seen["truncated"] += 1
            else:
                seen["answered"] += 1


def test_rrl_is_off_by_default(shared_server: Server) -> None:
    for _ in range(6):  # 300 queries, in bursts the socket buffers hold
        assert burst(shared_server, 50) == {"answered": 50, "truncated": 0, "dropped": 0}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("rrl")
    config = make_config(base / "config", country_mmdb)
    with (config / "dnsbalance.yaml").open("a") as handle:
        handle.write("rrl: {enabled: true, responses_per_second: 5, slip: 2, ipv4_prefix: 32}\n"
                     "tcp: {max_connections: 8, idle_timeout: 1}\n")
    running = start_server(config, base / "log", ipv6=False)
    yield running
    running.stop()


def test_rrl_limits_one_prefix_and_slips_tc(limited: Server) -> None:
    seen = burst(limited, 60, source="127.0.0.4")
    assert seen["answered"] <= 5 + 2  # the burst budget, plus refill while the burst runs
    assert seen["truncated"] >= 20 and seen["dropped"] >= 20  # slip 2: every other limited reply is TC
    # another prefix is untouched, and the limited client still gets answers over TCP
    assert burst(limited, 3, source="127.0.0.5")["answered"] == 3
    reply = dns.query.tcp(dns.message.make_query("deb.cdn.example.org", "A"), "127.0.0.1", port=limited.port,
                          source="127.0.0.4", timeout=3)
    assert reply.answer


def test_rrl_exempts_a_valid_server_cookie(limited: Server) -> None:
    first = dns.query.tcp(dns.message.make_query("deb.cdn.example.org", "A", use_edns=0,
                                                 options=[dns.edns.CookieOption(b"abcdefgh", b"")]),
                          "127.0.0.1", port=limited.port, source="127.0.0.6", timeout=3)
    (cookie,) = [o for o in first.options if o.otype == dns.edns.COOKIE]
    assert burst(limited, 40, source="127.0.0.6", cookie=cookie.server)["answered"] == 40
    forged = bytes(16)  # not ours: limited like anyone else
    assert burst(limited, 40, source="127.0.0.7", cookie=forged)["answered"] <= 7


def test_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(RRLSettings(enabled=True, responses_per_second=2, slip=3))
    actions = [limiter.check("192.0.2.1", 0.0) for _ in range(8)]
    assert actions[:2] == [Action.SEND, Action.SEND]
    assert actions[2:] == [Action.DROP, Action.DROP, Action.SLIP, Action.DROP, Action.DROP, Action.SLIP]
    assert limiter.check("192.0.2.1", 1.0) is Action.SEND  # a second later, the bucket has refilled
    assert limiter.check("192.0.2.200", 1.0) is Action.SEND  # same /24: the refilled bucket's last token
    assert limiter.check("192.0.2.99", 1.0) is not Action.SEND  # and now it is empty again
    assert limiter.check("198.51.100.1", 1.0) is Action.SEND  # another /24 has its own


def test_idle_tcp_connection_is_closed(limited: Server) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server
        assert 0.5 < time.monotonic() - started < 4


def test_byte_at_a_time_client_is_closed(limited: Server) -> None:
    wire = dns.message.make_query("deb.cdn.example.org", "A").to_wire()
    frame = struct.pack("!H", len(wire)) + wire
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        started = time.monotonic()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for byte in frame:
                sock.send(bytes([byte]))
                time.sleep(0.3)
                if _peek_closed(sock):
                    raise ConnectionResetError("closed by the server")
                sock.setblocking(True)
        assert time.monotonic() - started < 4  # idle timeout 1 s: no complete query ever arrived


def _peek_closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_connection_flood_evicts_the_idle_longest(limited: Server) -> None:
    flood = [socket.create_connection(("127.0.0.1", limited.port), timeout=3) for _ in range(8)]
    try:
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", limited.port), timeout=3) as real:
            wire = dns.message.make_query("deb.cdn.example.org", "A").to_wire()
            real.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", real.recv(2))[0]
            assert dns.message.from_wire(real.recv(size)).answer
        time.sleep(0.1)
        assert _peek_closed(flood[0])  # the oldest idle connection made room
        assert not _peek_closed(flood[-1])
    finally:
        for sock in flood:
            sock.close()
