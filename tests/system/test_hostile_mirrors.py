"""Mirrors that attack the prober's memory or hide where they failed (issue 22, items 4 and 6b), against real HTTP
servers on 127.0.0.1: a gzip bomb, an endless chunked body, a redirect to a refused port.

The bound: a probe holds at most MAX_BODY (64 KiB) of body plus one network chunk of compressed input and zlib's
window, so the prober's Python allocations for one such probe peak under 2 MiB (tracemalloc), and the running
server's supervisor grows by less than 16 MiB over cycles against both (before the fix: 64 MiB and more per probe).
"""
from __future__ import annotations

import asyncio
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dnsbalance.configuration.load import load_config
from dnsbalance.health.cycle import run_cycle
from dnsbalance.health.fetch import MAX_BODY, Fetched, fetch, new_client
from dnsbalance.health.checks.served import ServedVerdict
from dnsbalance.health.verdict import StampVerdict
from tests.harness import Server, probe_everything, start_server, wait_cycles
from tests.mirrors import STAMP, Archive, Mirror, gzip_bomb, refused_url

PEAK = 2 << 20  # bytes of Python allocations one hostile probe may peak at
GROWTH = 16 << 20  # bytes the supervisor's peak resident memory may grow by over cycles against both


@pytest.fixture
def archive() -> Archive:
    return Archive()


@pytest.fixture
def hostile(archive: Archive) -> Iterator[dict[str, Mirror]]:
    gzip_bomb(archive.stamp())  # made before any measure
    mirrors = {b: Mirror(archive, b) for b in ("gzip-bomb", "endless", "gzip", "fresh")}
    yield mirrors
    for mirror in mirrors.values():
        mirror.stop()


def traced(url: str) -> tuple[Fetched, int]:
    """One fetch, and the peak of what Python allocated while it ran."""
    async def once() -> Fetched:
        client = new_client(4)
        try:
            return await fetch(client, url, 5.0)
        finally:
            await client.aclose()

    tracemalloc.start()
    try:
        result = asyncio.run(once())
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_inflated_only_to_the_cap(hostile: dict[str, Mirror]) -> None:
    result, peak = traced(hostile["gzip-bomb"].url + STAMP)
    assert not result.ok and result.oversize
    assert result.error is not None and result.error.startswith(f"body inflates past {MAX_BODY} bytes (gzip, ")
    assert result.error.endswith("bytes received): not a trace file")
    assert len(result.body) == MAX_BODY and result.body.startswith(b"Sat Nov 21")  # a trace, then zeros
    assert peak < PEAK, f"{peak} bytes"


def test_an_endless_chunked_body_is_cut_at_the_cap(hostile: dict[str, Mirror]) -> None:
    result, peak = traced(hostile["endless"].url + STAMP)
    assert not result.ok and result.oversize
    assert result.error == f"body longer than {MAX_BODY} bytes and no length declared: not a trace file"
    assert peak < PEAK, f"{peak} bytes"


def test_a_small_gzip_stamp_is_still_read(hostile: dict[str, Mirror]) -> None:
    result, _ = traced(hostile["gzip"].url + STAMP)
    assert result.ok and not result.oversize and b"Archive serial: 2026112101" in result.body


def test_a_cycle_judges_them_not_a_trace(tmp_path: Path, hostile: dict[str, Mirror]) -> None:
    (tmp_path / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n"
        f"health: {{timeout: 2, master: '{hostile['fresh'].url}'}}\n")
    (tmp_path / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        # each mirror's address is where its test server listens: the served probe meets the same hostility
        f"  m{i}: {{addresses: [127.0.0.1], url: '{mirror.url}'}}\n" for i, mirror in enumerate(hostile.values())))
    (tmp_path / "default.yaml").write_text("deb:\n" + "".join(f"  m{i}: 0\n" for i in range(len(hostile))))
    config = load_config(tmp_path)

    async def once() -> tuple[list[tuple[bool, str]], list[bool]]:
        client = new_client(10)
        try:
            report = await run_cycle(config, client, 10)
        finally:
            await client.aclose()
        return ([(v.ok, v.cause) for v in report.verdicts if isinstance(v, StampVerdict)],
                [v.ok for v in report.verdicts if isinstance(v, ServedVerdict)])

    stamps, served = asyncio.run(once())
    assert stamps == [(False, "not-trace"), (False, "not-trace"), (True, ""), (True, "")]
    assert served == [False, False, True, True]  # at the address, under the balanced name, the same


def test_a_redirect_to_a_refused_port_names_the_redirect_and_its_target() -> None:
    target = refused_url() + STAMP

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/debian/{STAMP}"
        result, _ = traced(url)
        refused = "cannot connect: All connection attempts failed (Connection refused)"
        assert result.error == f"redirected to {target}: {refused}"
        direct, _ = traced(target)
        assert direct.error == refused  # no redirect, nothing more to name
    finally:
        httpd.shutdown()
        httpd.server_close()


def peak_memory(pid: int) -> int:
    """VmHWM: the most resident memory the process has held, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def jp_answers(server: Server, rounds: int = 100) -> set[str]:
    found: set[str] = set()
    for _ in range(rounds):
        found |= {rr.address for rr in server.query("deb.cdn.example.org", subnet="1.0.16.0/24").answer[0]}
    return found


def test_the_server_takes_them_out_with_its_memory_bounded(tmp_path: Path, config_dir: Path,
                                                          zone_fleet: dict[str, Mirror]) -> None:
    gzip_bomb(zone_fleet["jp3"].archive.stamp())
    probe_everything(config_dir, zone_fleet)
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 2)
        before = peak_memory(server.process.pid)
        zone_fleet["jp3"].behaviour = "gzip-bomb"
        zone_fleet["jp4"].behaviour = "endless"
        wait_cycles(server, 4)
        assert "jp3 is DOWN: body inflates past 65536 bytes (gzip, " in server.log()
        assert "jp4 is DOWN: body longer than 65536 bytes and no length declared" in server.log()
        assert jp_answers(server) == {"192.0.2.1", "192.0.2.2"}
        grown = peak_memory(server.process.pid) - before
        assert grown < GROWTH, f"the supervisor grew by {grown >> 20} MiB"
    finally:
        server.stop()
