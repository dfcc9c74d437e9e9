"""Bounded state (issue 14, items 4, 6, 12): counters keyed within a bounded space, saved and loaded off the
answering path; damaged state files ignored with a word; the rate limiter forgets the least recently seen."""
from __future__ import annotations

import json
import os
import random
import socket
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.rdatatype

from dnsbalance.answer.ratelimit import SLOT, TABLE_LIMIT, Action, RateLimiter
from dnsbalance.configuration.model import RRLSettings
from tests.harness import start_server


def metrics(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=20) as response:
        return response.read().decode()


def test_random_query_types_fold_into_one_label(config_dir: Path, tmp_path: Path) -> None:
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        rng = random.Random(4)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            for batch in range(30):
                for ident in range(100):
                    query = dns.message.make_query("deb.cdn.example.org", rng.randrange(300, 65000), id=ident)
                    sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
                for _ in range(100):
                    sock.recv(4096)  # in step with the server, so none is dropped
        text = metrics(server.status_url)
        rows = [line for line in text.splitlines() if line.startswith("dnsbalance_queries_total{")]
        assert len(rows) < 20, rows[:30]  # unbounded: one row per random type, 3,000
        assert 'type="other"' in text
        assert server.query("deb.cdn.example.org").answer
    finally:
        server.stop()


def test_counters_file_with_a_million_keys_is_folded_at_start(config_dir: Path, tmp_path: Path) -> None:
    counters = config_dir / "state" / "counters"
    counters.mkdir(parents=True)
    rows = [[f"TYPE{i}", "NOERROR", f"X{i % 997}", "ZZ", 1] for i in range(200_000)]
    (counters / "main.json").write_text(json.dumps({"queries": rows}))
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        started = time.monotonic()
        text = metrics(server.status_url)
        assert time.monotonic() - started < 5
        assert 'dnsbalance_queries_total{continent="none",country="none",rcode="NOERROR",type="other"} 200000.0' \
            in text, [line for line in text.splitlines() if "queries_total" in line][:5]
    finally:
        server.stop()


def test_damaged_state_files_are_ignored_with_a_word(config_dir: Path, tmp_path: Path) -> None:
    state = config_dir / "state"
    (state / "counters").mkdir(parents=True)
    (state / "health.json").write_text('{"mirrors": []}')
    (state / "counters" / "main.json").write_text("[]")
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        assert server.query("deb.cdn.example.org").answer
        server.wait_for_log(r"ignoring unreadable health state .*health\.json")
        server.wait_for_log(r"ignoring unreadable counters .*main\.json")
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_rate_limiter_evicts_the_least_recently_seen() -> None:
    limiter = RateLimiter(RRLSettings(enabled=True, responses_per_second=2, slip=0, ipv4_prefix=32))
    now = 100.0
    assert [limiter.check("192.0.2.1", now) for _ in range(3)] == [Action.SEND, Action.SEND, Action.DROP]
    for n in range(2 * TABLE_LIMIT):  # a flood of new prefixes while the limited client keeps sending
        now += 1e-7
        limiter.check(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", now)
        if n % 1000 == 0:
            assert limiter.check("192.0.2.1", now) is Action.DROP, n  # still limited: not evicted
    # twice as many prefixes as slots, and the memory is what it was: a fixed table
    assert len(limiter.table) == TABLE_LIMIT * SLOT.size


def test_rate_limiter_budget_is_shared_with_forked_processes() -> None:
    """Workers and table generations are forked: a client's budget is one, whichever process answers."""
    limiter = RateLimiter(RRLSettings(enabled=True, responses_per_second=3, slip=0, ipv4_prefix=24))
    now = 50.0
    pid = os.fork()
    if pid == 0:  # the child spends the budget of 198.51.100.0/24
        code = 0 if [limiter.check("198.51.100.7", now) for _ in range(3)] == [Action.SEND] * 3 else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert limiter.check("198.51.100.9", now) is Action.DROP  # spent in the other process
    assert limiter.check("198.51.101.9", now) is Action.SEND  # another prefix
