"""The native fast path on real loopback sockets (issue 27): a batch received, answered and sent in C, each reply
from the address asked, the datagrams it does not know answered in order by the Python path; the same bytes as
the Python path for the same random source; and a real server under bursts (which it answers in batches)
that says which path it runs and counts every query, native or not (DNSBALANCE_NATIVE=0: the Python path)."""
from __future__ import annotations

import json
import random
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import pytest

from dnsbalance import udpio
from dnsbalance.answer import native
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import load
from tests.harness import make_config, start_server

built = pytest.mark.skipif(native._native is None, reason="the native extension is not built")


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


def client_for(target: str, index: int, clients: list[socket.socket]) -> socket.socket:
    client = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(2)
    client.bind(("::1" if ":" in target else f"127.0.1.{index % 200 + 1}", 0))
    clients.append(client)
    return client


def batch_for(server: socket.socket) -> object:
    assert native._native is not None
    return native._native.Batch(server.fileno(), server.family == socket.AF_INET6,
                                udpio.is_wildcard(server.getsockname()[0]))


@built
@pytest.mark.parametrize("listen, targets", [
    ("0.0.0.0", ["127.0.0.5", "127.0.0.1", "127.0.0.6", "127.0.0.5", "127.0.0.200", "127.0.0.1"]),
    ("127.0.0.1", ["127.0.0.1"] * 6),
    ("::", ["::1"] * 4),
    ("::1", ["::1"] * 4),
])
def test_a_native_batch_answers_each_from_the_address_asked(listen: str, targets: list[str],
                                                           clients: list[socket.socket],
                                                           tmp_path: Path, country_mmdb: Path) -> None:
    """Nothing here is a known shape: every datagram goes to the fallback, in order, and its reply (or
    none) goes back to its own client from the address it asked."""
    server = bound(listen)
    try:
        batch = batch_for(server)
        shapes = native._native.Shapes(native._native.AnswerTable([]))  # type: ignore[union-attr]
        port = server.getsockname()[1]
        for index, target in enumerate(targets):
            client_for(target, index, clients).sendto(f"query {index} to {target}".encode(), (target, port))
        seen: list[tuple[bytes, str]] = []

        def fallback(data: bytes, host: str, repeated: bool) -> bytes | None:
            assert repeated is False  # payloads that are no DNS query are never worth learning
            seen.append((data, host))
            return None if len(seen) == 3 else b"reply to " + data

        received, answered, seconds = batch.serve(shapes, random.random, fallback)  # type: ignore[attr-defined]
        assert (received, answered) == (len(targets), 0) and seconds >= 0
        assert seen == [(f"query {i} to {t}".encode(), c.getsockname()[0])
                        for i, (t, c) in enumerate(zip(targets, clients))]
        for index, (client, target) in enumerate(zip(clients, targets)):
            if index == 2:
                client.settimeout(0.2)
                with pytest.raises(socket.timeout):
                    client.recvfrom(100)
                continue
            data, source = client.recvfrom(100)
            assert data == f"reply to query {index} to {target}".encode()
            assert source[:2] == (target, port)
    finally:
        server.close()


@built
def test_a_receive_timeout_returns_nothing() -> None:
    server = bound("127.0.0.1")
    try:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 50_000))  # as server.py
        shapes = native._native.Shapes(native._native.AnswerTable([]))  # type: ignore[union-attr]
        assert batch_for(server).serve(shapes, random.random, lambda d, h, r: None) == (0, 0, 0.0)  # type: ignore
    finally:
        server.close()


@built
def test_same_replies_as_the_python_path_through_a_socket(clients: list[socket.socket], tmp_path: Path,
                                                         country_mmdb: Path) -> None:
    loaded, problems = load(make_config(tmp_path / "config", country_mmdb))
    assert loaded is not None, problems
    serving = Balancer(loaded).serving
    path = serving.fast.native
    shapes = path.process_shapes()
    locate = serving.locator.locate
    rng = random.Random(11)

    def fallback(data: bytes, host: str, repeated: bool) -> bytes | None:  # server.py's, learning at first sight
        prepared = serving.fast.lookup(data, host, locate)
        if prepared is None:
            return None
        reply = prepared.reply(data[:2], rng)
        path.learn(data, host, prepared)
        return reply

    def ask(name: str, rdtype: str, subnet: str | None, ident: int) -> bytes:
        options = [dns.edns.ECSOption(subnet.split("/")[0], int(subnet.split("/")[1]))] if subnet else None
        return dns.message.make_query(name, rdtype, use_edns=0, options=options, id=ident).to_wire()

    shapes_asked = [("deb.cdn.example.org", "A", "1.0.16.0/24"), ("DEB.cdn.example.ORG", "A", "1.0.16.0/24"),
                    ("deb.cdn.example.org", "AAAA", None), ("nosuch.cdn.example.org", "A", "5.0.0.0/16"),
                    ("deb.cdn.example.org", "MX", None), ("example.com", "A", None)]
    queries = [ask(*shapes_asked[i % len(shapes_asked)], ident=i) for i in range(24)]
    server = bound("127.0.0.1")
    try:
        sender = client_for("127.0.0.1", 0, clients)
        host = sender.getsockname()[0]
        batch = batch_for(server)
        total_native = 0
        for round_ in range(3):  # the first round learns the shapes, the next ones answer them natively
            for packet in queries:
                sender.sendto(packet, server.getsockname())
            time.sleep(0.05)
            state = rng.getstate()
            received = answered = 0
            while received < len(queries):
                got = batch.serve(shapes, rng.random, fallback)  # type: ignore[attr-defined]
                received, answered = received + got[0], answered + got[1]
            total_native += answered
            ours = [sender.recvfrom(4096)[0] for _ in range(len(queries) - 8)]  # MX, outside: no fallback reply
            theirs = random.Random()
            theirs.setstate(state)
            expected = [serving.fast.answer(packet, host, locate, theirs) for packet in queries]
            assert ours == [reply for reply in expected if reply is not None]
            assert rng.random() == theirs.random()
        assert total_native >= 2 * (len(queries) - 8)  # rounds 2 and 3: every shape the Python path takes
    finally:
        server.close()


def test_a_server_under_bursts(tmp_path: Path, config_dir: Path) -> None:
    server = start_server(config_dir, tmp_path / "log")
    try:
        running = native.describe()["path"]  # native, unless not built or DNSBALANCE_NATIVE=0
        assert f"UDP fast path: {running}" in server.log()
        status = json.loads(urllib.request.urlopen(server.status_url + "/status.json", timeout=5).read())
        assert status["udp_fast_path"]["path"] == running
        before = status["queries"]["total"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sent = 0
            for burst in range(20):  # back to back: queued together, taken as batches
                ids = set()
                for i in range(40):
                    ident = burst * 40 + i
                    message = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0, id=ident,
                                                     options=[dns.edns.ECSOption("1.0.16.0", 24)])
                    sock.sendto(message.to_wire(), ("127.0.0.1", server.port))
                    ids.add(ident)
                while ids:
                    reply = dns.message.from_wire(sock.recv(4096))
                    ids.discard(reply.id)
                    assert reply.answer and reply.options[0].scopelen > 0  # ECS echoed with its scope
                    sent += 1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status = json.loads(urllib.request.urlopen(server.status_url + "/status.json", timeout=5).read())
            if status["queries"]["total"] - before >= sent:
                break
            time.sleep(0.5)
        assert status["queries"]["total"] - before == sent == 800  # every one counted, native or not
        metrics = urllib.request.urlopen(server.status_url + "/metrics", timeout=5).read().decode()
        natively = float(metrics.split("\ndnsbalance_native_answers_total ")[1].split()[0])
        if running == "native":
            assert natively > 400  # bursts are batches, and batches of known shapes are answered natively
        else:
            assert natively == 0
    finally:
        server.stop()


# The queries of ISC's EDNS compliance report (genreport: plain, edns, edns1, edns@512, ednsopt, ednsflags,
# dnssec, optlist, zflag ...) and odd cases around them, each asked four times by one client: the third and
# fourth are the native path's (a shape is learnt at its second miss), which must give the bytes the Python path
# gave, ID aside, or leave the query to it.
GENREPORT = [
    ("cdn.example.org", "SOA", {}),
    ("cdn.example.org", "NS", {"use_edns": 0}),
    ("cdn.example.org", "SOA", {"use_edns": 1}),  # edns1: BADVERS
    ("cdn.example.org", "SOA", {"use_edns": 0, "payload": 512}),
    ("cdn.example.org", "SOA", {"use_edns": 0, "options": [dns.edns.GenericOption(100, b"")]}),  # ednsopt
    ("cdn.example.org", "SOA", {"use_edns": 0, "ednsflags": 0x4000}),  # ednsflags: an unknown flag
    ("cdn.example.org", "SOA", {"use_edns": 0, "want_dnssec": True}),  # dnssec (the zone is unsigned)
    ("cdn.example.org", "SOA", {"use_edns": 0, "options": [dns.edns.GenericOption(3, b""),  # optlist: NSID,
                                                           dns.edns.ECSOption("1.0.16.0", 24),  # ECS,
                                                           dns.edns.GenericOption(9, b""),  # EXPIRE,
                                                           dns.edns.GenericOption(10, b"\x01" * 8)]}),  # COOKIE
    ("nosuch.cdn.example.org", "A", {"use_edns": 0}),  # NXDOMAIN
    ("deb.cdn.example.org", "TXT", {"use_edns": 0}),  # NODATA
    ("dEb.CdN.ExAmPlE.oRg", "TXT", {"use_edns": 0, "options": [dns.edns.ECSOption("1.0.16.0", 24)]}),  # 0x20
    ("nosuch.example.net", "A", {}),  # outside the zone: REFUSED
    # the apex has one mirror in the default table: its A answers are the same whatever the draw
    ("cdn.example.org", "A", {}),
    ("cdn.example.org", "A", {"use_edns": 0}),
    ("cdn.example.org", "A", {"use_edns": 0, "payload": 512}),
    ("cdn.example.org", "A", {"use_edns": 0, "want_dnssec": True}),
    ("CDN.example.ORG", "A", {"use_edns": 0}),
    ("cdn.example.org", "A", {"use_edns": 0, "options": [dns.edns.ECSOption("192.0.2.0", 24)]}),  # no country
]


def test_genreport_queries_get_the_same_bytes_on_either_path(tmp_path: Path, config_dir: Path) -> None:
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            for number, (name, rdtype, options) in enumerate(GENREPORT):
                replies = []
                for attempt in range(4):
                    query = dns.message.make_query(name, rdtype, id=number * 8 + attempt, **options)
                    sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
                    reply = sock.recv(4096)
                    assert reply[:2] == struct.pack("!H", number * 8 + attempt)
                    if any(getattr(o, "otype", None) == 10 for o in options.get("options", [])):
                        # a COOKIE: the server cookie (the last 16 bytes: version, reserved, a timestamp in
                        # seconds, the hash, RFC 9018) changes when the second does; the rest may not
                        assert reply[-28:-16] == struct.pack("!HH", 10, 24) + b"\x01" * 8  # ours echoed first
                        reply = reply[:-16]
                    replies.append(reply[2:])
                assert len(set(replies)) == 1, (name, rdtype, options, [dns.message.from_wire(b"\0\0" + r)
                                                                        for r in set(replies)])
        metrics = urllib.request.urlopen(server.status_url + "/metrics", timeout=5).read().decode()
        natively = float(metrics.split("\ndnsbalance_native_answers_total ")[1].split()[0])
        if native.describe()["path"] == "native":
            assert natively >= 12  # six A shapes, each learnt at its second miss, answered natively twice
    finally:
        server.stop()
