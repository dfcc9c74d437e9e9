"""Metrics operators expect (issue 15 item 5), scraped from a real server and checked by `promtool check metrics`
(Debian package prometheus)."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import httpx

from tests.harness import start_server


def value(text: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert found, f"{series} missing"
    return float(found.group(1))


def test_metrics_count_transports_and_malformed_queries_and_pass_promtool(config_dir: Path, tmp_path: Path) -> None:
    with (config_dir / "dnsbalance.yaml").open("a") as handle:
        handle.write("cookies: true\n")
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        for _ in range(40):
            assert server.query("deb.cdn.example.org").answer
        for _ in range(7):
            assert server.query("deb.cdn.example.org", tcp=True).answer
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            for _ in range(3):  # a header and a question that ends mid-label: FORMERR
                sock.sendto(b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab", ("127.0.0.1", server.port))
                assert sock.recv(512)[3] & 0x0F == 1
        cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)
        query = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0, options=[cookie])
        dns.query.udp(query, "127.0.0.1", port=server.port, timeout=3)
        time.sleep(0.2)
        text = httpx.get(f"{server.status_url}/metrics", timeout=10).text
    finally:
        server.stop()
    assert value(text, 'dnsbalance_received_queries_total{transport="tcp"}') == 7
    assert value(text, 'dnsbalance_received_queries_total{transport="udp"}') == 40 + 3 + 1
    assert value(text, "dnsbalance_malformed_queries_total") == 3
    assert value(text, 'dnsbalance_cookies_total{result="received"}') == 1
    assert value(text, 'dnsbalance_cookies_total{result="invalid"}') == 0  # a client cookie alone
    assert value(text, "dnsbalance_answer_latency_seconds_count") >= 2  # one in 16 UDP, one in 16 TCP
    assert 0 < value(text, "dnsbalance_answer_latency_seconds_sum") < 1
    assert re.search(r'^dnsbalance_build_info\{python="3[\d.]+",version="[^"]+"\} 1\.0$', text, re.MULTILINE)
    assert value(text, "process_resident_memory_bytes") > 10 << 20
    assert value(text, 'dnsbalance_answering_process_resident_memory_bytes{process="main"}') > 10 << 20
    assert value(text, 'dnsbalance_reloads_total{result="applied"}') == 0
    assert 'dnsbalance_rate_limited_replies_total{action="drop"} 0.0' in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: the Debian package prometheus ships it"
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        checked.stdout + checked.stderr
