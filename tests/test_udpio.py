"""dnsbalance/udpio.py on real loopback sockets: datagrams waiting together come in one batch, every reply
goes to its own client from the address that client asked, and a datagram without a reply gets none."""
from __future__ import annotations

import socket
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


def ask(clients: list[socket.socket], targets: list[str], port: int) -> None:
    """One client socket per target, each sending its own payload; all queued before the server reads."""
    for index, target in enumerate(targets):
        client = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(2)
        client.bind(("::1" if ":" in target else f"127.0.1.{index + 1}", 0))  # a source of its own to check
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
        datagrams = udpio.datagrams(server)
        assert isinstance(datagrams, udpio.BatchDatagrams)
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
    finally:
        server.close()


def test_more_than_a_batch_and_large_datagrams(clients: list[socket.socket]) -> None:
    server = bound("0.0.0.0")
    try:
        datagrams = udpio.datagrams(server)
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


def test_the_plain_fallback_answers_too(clients: list[socket.socket]) -> None:
    server = bound("127.0.0.1")
    try:
        datagrams = udpio.PlainDatagrams(server)
        ask(clients, ["127.0.0.1", "127.0.0.1"], server.getsockname()[1])
        for index in range(2):
            batch = datagrams.receive()
            assert len(batch) == 1 and batch[0][1] == f"127.0.1.{index + 1}"
            datagrams.send([b"re " + batch[0][0]])
        assert [c.recv(100) for c in clients] == [b"re query 0 to 127.0.0.1", b"re query 1 to 127.0.0.1"]
    finally:
        server.close()
