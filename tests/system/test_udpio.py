"""dnsbalance/udpio.py on real loopback sockets: datagrams waiting together come in one batch, every reply
goes to its own client from the address that client asked, and a datagram without a reply gets none; the
same one datagram at a time, and across the switch between the two."""
from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from dnsbalance import udpio


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def bound(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if udpio.is_wildcard(host):
        udpio.want_destination(sock)
    sock.bind((host, 0))
    return sock


def ask(clients: list[socket.socket], targets: list[str], port: int, first: int = 0) -> None:
    """One client socket per target, each sending its own payload; all queued before the server reads."""
    for index, target in enumerate(targets, first):
        client = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(2)
        client.bind(("::1" if ":" in target else f"127.0.1.{index % 200 + 1}", 0))  # a source of its own to check
        client.sendto(f"query {index} to {target}".encode(), (target, port))
        clients.append(client)


@pytest.mark.parametrize("listen, targets", [
    ("0.0.0.0", ["127.0.0.5", "127.0.0.1", "127.0.0.6", "127.0.0.5", "127.0.0.200", "127.0.0.1"]),
    ("127.0.0.1", ["127.0.0.1"] * 6),
    ("::", ["::1"] * 4),
    ("::1", ["::1"] * 4),
])
def test_a_batch_is_answered_each_from_the_address_asked(listen: str, targets: list[str],
                                                        clients: list[socket.socket]) -> None:
    server = bound(listen)
    try:
        datagrams = udpio.MmsgBatch(server, udpio.is_wildcard(listen))
        ask(clients, targets, server.getsockname()[1])
        batch = datagrams.receive()
        assert len(batch) == len(targets)  # all were waiting: one call took them all
        assert [data for data, _ in batch] == [f"query {i} to {t}".encode() for i, t in enumerate(targets)]
        assert [host for _, host in batch] == [c.getsockname()[0] for c in clients]
        silent = 2  # no reply for this one; the others must still go to the right clients
        datagrams.send([None if i == silent else b"reply to " + data for i, (data, _) in enumerate(batch)])
        for index, (client, target) in enumerate(zip(clients, targets)):
            if index == silent:
                client.settimeout(0.2)
                with pytest.raises(socket.timeout):
                    client.recvfrom(100)
                continue
            data, source = client.recvfrom(100)
            assert data == f"reply to query {index} to {target}".encode()
            assert source[:2] == (target, server.getsockname()[1])  # from the address asked
        # the next batch, every query answered: each reply back in its own place after the shift above
        ask(clients, targets, server.getsockname()[1], first=100)
        batch = datagrams.receive()
        datagrams.send([b"again " + data for data, _ in batch])
        for index, (client, target) in enumerate(zip(clients[len(targets):], targets), 100):
            assert client.recvfrom(100) == (f"again query {index} to {target}".encode(),
                                            (target, server.getsockname()[1], *((0, 0) if ":" in target else ())))
    finally:
        server.close()


def test_more_than_a_batch_and_large_datagrams(clients: list[socket.socket]) -> None:
    server = bound("0.0.0.0")
    try:
        datagrams = udpio.MmsgBatch(server, wildcard=True)
        port = server.getsockname()[1]
        targets = [f"127.0.0.{2 + i % 3}" for i in range(udpio.WIDTH + 5)]
        ask(clients, targets, port)
        big = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        clients.append(big)
        big.settimeout(2)
        big.sendto(b"x" * 60000, ("127.0.0.9", port))
        first = datagrams.receive()
        assert len(first) == udpio.WIDTH
        datagrams.send([data.upper() for data, _ in first])
        second = datagrams.receive()
        assert len(second) == 6 and second[-1][0] == b"x" * 60000
        datagrams.send([data.upper() for data, _ in second])
        for index, client in enumerate(clients):
            data, source = client.recvfrom(65535)
            target = targets[index] if index < len(targets) else "127.0.0.9"
            assert source == (target, port)
            assert data == (f"QUERY {index} TO {target}".encode() if index < len(targets) else b"X" * 60000)
    finally:
        server.close()


@pytest.mark.parametrize("listen, targets", [
    ("0.0.0.0", ["127.0.0.5", "127.0.0.1", "127.0.0.6", "127.0.0.5", "127.0.0.200"]),
    ("127.0.0.1", ["127.0.0.1"] * 5),
    ("::", ["::1"] * 5),
])
def test_one_at_a_time_then_batched(listen: str, targets: list[str], clients: list[socket.socket]) -> None:
    """Datagrams: the socket module's calls for a lone datagram (recvmsg/sendmsg with pktinfo on a wildcard
    socket), a batch once they queue up; the replies right either way."""
    server = bound(listen)
    try:
        datagrams = udpio.Datagrams(server)
        port = server.getsockname()[1]
        ask(clients, targets[:1], port)
        assert not datagrams.batching
        first = datagrams.receive()
        assert not datagrams.batched and len(first) == 1
        datagrams.send([b"reply to " + first[0][0]])
        ask(clients, targets[1:], port, first=1)
        datagrams.batching = True  # as after a receive that did not have to wait
        rest = datagrams.receive()
        assert datagrams.batched and len(rest) == len(targets) - 1
        assert datagrams.batching  # several came: the next receive is a batch one too
        datagrams.send([b"reply to " + data for data, _ in rest])
        for index, (client, target) in enumerate(zip(clients, targets)):
            data, source = client.recvfrom(100)
            assert data == f"reply to query {index} to {target}".encode()
            assert source[:2] == (target, port)
        # a batch of one datagram: single calls next; a datagram that had to be waited for: single calls still
        for batched, late in ((True, False), (False, True)):
            timer = threading.Timer(0.05 if late else 0, ask, (clients, targets[:1], port))
            timer.start()
            lone = datagrams.receive()
            timer.join()
            assert (datagrams.batched, datagrams.batching) == (batched, False)
            assert [host for _, host in lone] == [clients[-1].getsockname()[0]]
            datagrams.send([b"re " + lone[0][0]])
            data, source = clients[-1].recvfrom(100)
            assert data == b"re query 0 to " + targets[0].encode() and source[:2] == (targets[0], port)
        datagrams.send([None])  # nothing to send: nothing sent, no error
    finally:
        server.close()


def test_reply_pktinfo() -> None:
    """The reply's source is the query's destination (the kernel's spec_dst for IPv4); an interface only for
    IPv6 link-local."""
    v4 = (7).to_bytes(4, "little") + bytes([127, 0, 0, 5]) * 2  # ifindex, spec_dst, addr
    assert udpio.reply_pktinfo(v4, v6=False) == bytes(4) + bytes([127, 0, 0, 5]) * 2
    for address, keeps in (("2001:db8::53", False), ("fe80::1", True)):
        v6 = socket.inet_pton(socket.AF_INET6, address) + (3).to_bytes(4, "little")
        assert udpio.reply_pktinfo(v6, v6=True) == v6[:16] + ((3).to_bytes(4, "little") if keeps else bytes(4))


def test_pacing_under_load_only() -> None:
    """Past PACE_RATE datagrams a second a UDP thread pauses between batches that were not full (fewer
    wake-ups and system calls per query), at most PACE_MAX; below it, never."""
    assert udpio.pause_for(udpio.PACE_RATE - 1) == 0.0
    assert udpio.pause_for(40_000) == pytest.approx(min(udpio.PACE_MAX, udpio.PACE_BATCH / 40_000))
    assert 0 < udpio.pause_for(1_000_000) < udpio.pause_for(40_000) <= udpio.PACE_MAX


def test_pause_follows_the_measured_rate(clients: list[socket.socket]) -> None:
    server = bound("127.0.0.1")
    try:
        datagrams = udpio.Datagrams(server)
        port = server.getsockname()[1]
        for busy in (True, False):
            # a window just ended in which many (or few) datagrams came
            datagrams.window_start = time.monotonic() - udpio.PACE_WINDOW
            datagrams.window_count = udpio.PACE_RATE if busy else 10
            ask(clients, ["127.0.0.1"], port)
            got = datagrams.receive()
            assert len(got) == 1
            assert (datagrams.pause > 0) is busy
            datagrams.send([b"reply"])
            assert clients[-1].recvfrom(100)[0] == b"reply"
    finally:
        server.close()
