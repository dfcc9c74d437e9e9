"""A TCP client that pipelines queries and never reads the replies (issue 14, item 3): the server stops reading
it instead of buffering replies without bound, keeps answering others, and ends it at the idle timeout."""
from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import dns.message

from tests.harness import start_server


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_unread_pipelined_replies_do_not_grow_memory(config_dir: Path, tmp_path: Path) -> None:
    with (config_dir / "dnsbalance.yaml").open("a") as handle:
        handle.write("tcp: {idle_timeout: 2}\n")
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        wire = dns.message.make_query("deb.cdn.example.org", "A").to_wire()
        frames = (struct.pack("!H", len(wire)) + wire) * 2000
        before = rss_mib(server.process.pid)
        sent = 0
        closed = False
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that never reads
        sock.settimeout(0.2)
        started = time.monotonic()
        while time.monotonic() - started < 8:
            try:
                sent += sock.send(frames)
            except socket.timeout:
                assert server.query("deb.cdn.example.org").answer  # others are still answered
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
        sock.close()
        grown = rss_mib(server.process.pid) - before
        assert sent > 1 << 20 or closed
        assert grown < 60, grown  # unbounded: 37 MB to 398 MB in 10 s
        assert closed, f"the idle timeout never ended a client that reads nothing ({sent} bytes sent)"
        assert time.monotonic() - started < 7
    finally:
        server.stop()
