"""Listening on 0.0.0.0 and [::] (issue 15): a UDP reply leaves from the address the query was sent to.

dnspython's udp() refuses a reply from any other address than the one it asked (UnexpectedSource), so a
server that answered 127.0.0.5 from 127.0.0.1, as a wildcard socket does by default, fails here."""
from __future__ import annotations

import socket
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.harness import start_server

ASKED = ["127.0.0.1", "127.0.0.5", "127.0.0.77", "::1"]


@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["single", "workers"])
def test_wildcard_listeners_answer_from_the_address_asked(tmp_path: Path, config_dir: Path,
                                                         workers: tuple[str, ...]) -> None:
    server = start_server(config_dir, tmp_path / "log", wildcard=True, extra=workers)
    try:
        for host in ASKED:
            for tcp in (False, True):
                # several queries, each from a new source port: with workers the kernel spreads them
                for _ in range(8 if not tcp else 1):
                    reply = server.query("deb.cdn.example.org", host=host, tcp=tcp, subnet="1.0.16.0/24")
                    assert reply.rcode() == dns.rcode.NOERROR, (host, tcp)
                    assert reply.answer, (host, tcp)
    finally:
        server.stop()


def test_wildcard_reply_source_seen_by_a_plain_socket(tmp_path: Path, config_dir: Path) -> None:
    """The same, seen with a bare socket: the reply's source is exactly the address asked, for several
    queries sent back to back (which the server may receive and answer as one batch)."""
    server = start_server(config_dir, tmp_path / "log", wildcard=True, ipv6=False)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sent = {}
            for index, host in enumerate(["127.0.0.5", "127.0.0.6", "127.0.0.1", "127.0.0.9"] * 4):
                query = dns.message.make_query("deb.cdn.example.org", "A", id=index + 1)
                sock.sendto(query.to_wire(), (host, server.port))
                sent[index + 1] = host
            while sent:
                data, source = sock.recvfrom(4096)
                reply = dns.message.from_wire(data)
                assert source == (sent.pop(reply.id), server.port)
                assert reply.answer
    finally:
        server.stop()
