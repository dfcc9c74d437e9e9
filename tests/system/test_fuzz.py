"""Hostile input against the real server: random and mutated packets over UDP and TCP, and the classic
malformations. The server never crashes or hangs, answers FORMERR where the header parses, and then
answers a valid query."""
from __future__ import annotations

import socket
import struct

import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Server, recv_frame

VALID = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0, payload=1232).to_wire()
HEADER = struct.Struct("!HHHHHH")
QUESTION = b"\x03deb\x03cdn\x07example\x03org\x00\x00\x01\x00\x01"


def udp_exchange(server: Server, packet: bytes, timeout: float = 0.5) -> bytes | None:
    """A reply, or None after `timeout` (short where silence is the expected outcome: loopback answers
    within a millisecond)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, ("127.0.0.1", server.port))
        try:
            return sock.recv(65535)
        except socket.timeout:
            return None


def check_reply(packet: bytes, reply: bytes | None) -> None:
    """Only packets shorter than a header, and responses (QR set), go unanswered."""
    if len(packet) < 12 or packet[2] & 0x80:
        assert reply is None
        return
    assert reply is not None, f"no answer to {packet.hex()}"
    assert len(reply) >= 12 and reply[:2] == packet[:2] and reply[2] & 0x80


def assert_alive(server: Server) -> None:
    reply = dns.message.from_wire(udp_exchange(server, VALID) or b"")
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert server.process.poll() is None


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out[: max(0, len(out) - cut)])


fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fuzz
@given(st.binary(min_size=12, max_size=600), st.booleans())
def test_random_datagrams(shared_server: Server, packet: bytes, response: bool) -> None:
    packet = packet[:2] + bytes([packet[2] & 0x7F | (0x80 if response else 0)]) + packet[3:]
    check_reply(packet, udp_exchange(shared_server, packet, 0.1 if response else 2))


def test_datagrams_shorter_than_a_header_are_dropped(shared_server: Server) -> None:
    for size in range(12):
        assert udp_exchange(shared_server, VALID[:size], 0.1) is None
    assert_alive(shared_server)


@fuzz
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, 20))
def test_mutated_queries(shared_server: Server, edits: list[tuple[int, int]], cut: int) -> None:
    packet = mutate(VALID, edits, cut)
    check_reply(packet, udp_exchange(shared_server, packet, 0.1 if len(packet) < 12 or packet[2] & 0x80 else 2))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_queries_over_tcp(shared_server: Server, edits: list[tuple[int, int]]) -> None:
    packet = mutate(VALID, edits, 0)
    packet = packet[:2] + bytes([packet[2] & 0x7F]) + packet[3:]  # a query, so an answer is due
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=3) as sock:
        sock.sendall(struct.pack("!H", len(packet)) + packet + struct.pack("!H", len(VALID)) + VALID)
        first = recv_frame(sock)
        assert first[:2] == packet[:2] and first[2] & 0x80
        assert dns.message.from_wire(recv_frame(sock)).answer  # the connection still serves


def rcode_of(reply: bytes | None) -> int:
    assert reply is not None
    return struct.unpack("!H", reply[2:4])[0] & 0xF


def test_classic_malformations(shared_server: Server) -> None:
    one = HEADER.pack(1, 0x0100, 1, 0, 0, 0)
    cases = {
        "truncated header": (b"\x00\x01\x01", None),
        "header only, qdcount 1": (one, dns.rcode.FORMERR),
        "compression pointer loop": (one + b"\xc0\x0c\x00\x01\x00\x01", dns.rcode.FORMERR),
        "pointer to itself in a later label": (one + b"\x03abc\xc0\x0f\x00\x01\x00\x01", dns.rcode.FORMERR),
        "label over 63 octets": (one + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", dns.rcode.FORMERR),
        "name over 255 octets": (one + (b"\x3f" + b"a" * 63) * 4 + QUESTION[:], dns.rcode.FORMERR),
        "qdcount 0": (HEADER.pack(1, 0x0100, 0, 0, 0, 0), dns.rcode.FORMERR),
        "qdcount 2": (HEADER.pack(1, 0x0100, 2, 0, 0, 0) + QUESTION * 2, dns.rcode.FORMERR),
        "qdcount 2, one present": (HEADER.pack(1, 0x0100, 2, 0, 0, 0) + QUESTION, dns.rcode.FORMERR),
        "OPT with huge RDLENGTH": (HEADER.pack(1, 0x0100, 1, 0, 0, 1) + QUESTION
                                   + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\xff\xff\x00\x0a", dns.rcode.FORMERR),
        "two OPT records": (HEADER.pack(1, 0x0100, 1, 0, 0, 2) + QUESTION
                            + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2, dns.rcode.FORMERR),
        "OPT option past its record": (HEADER.pack(1, 0x0100, 1, 0, 0, 1) + QUESTION
                                       + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x06\x00\x0a\x00\x08ab",
                                       dns.rcode.FORMERR),
        "OPT not at the root": (HEADER.pack(1, 0x0100, 1, 0, 0, 1) + QUESTION
                                + b"\x01x\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", dns.rcode.FORMERR),
        "answer count beyond the data": (HEADER.pack(1, 0x0100, 1, 5, 0, 0) + QUESTION, dns.rcode.FORMERR),
    }
    for label, (packet, expected) in cases.items():
        reply = udp_exchange(shared_server, packet)
        if expected is None:
            assert reply is None, label
        else:
            assert rcode_of(reply) == expected, label
            assert reply[:2] == packet[:2], label
    assert_alive(shared_server)


def test_tcp_length_prefix_longer_than_data_then_valid_connection(shared_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=3) as stuck:
        stuck.sendall(struct.pack("!H", 500) + VALID)  # promises 500 octets, sends fewer
        with socket.create_connection(("127.0.0.1", shared_server.port), timeout=3) as other:
            other.sendall(struct.pack("!H", len(VALID)) + VALID)
            assert dns.message.from_wire(recv_frame(other)).answer  # one stuck client blocks nobody
    assert_alive(shared_server)


def test_tcp_zero_and_short_frames(shared_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=3) as sock:
        sock.sendall(b"\x00\x00" + b"\x00\x05hello" + struct.pack("!H", len(VALID)) + VALID)
        assert dns.message.from_wire(recv_frame(sock)).answer  # runts are dropped, the query is answered
