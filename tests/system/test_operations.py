"""Operating it: the status page (in headless Chromium), its JSON, Prometheus metrics, `stats`, and reload
without downtime under load."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import dns.edns
import dns.message
import httpx
import pytest

from tests.harness import ROOT, Server, start_server

JP_WEIGHTS = {"jp1": 9000, "jp2": 6000, "jp3": 3000, "jp4": 1000}


@pytest.fixture
def busy(tmp_path: Path, config_dir: Path) -> Iterator[Server]:
    """A server with jp4 taken down by the operator, after 3,000 queries from a Japanese subnet."""
    mirrors = config_dir / "mirrors.yaml"
    mirrors.write_text(mirrors.read_text().replace("jp4: {addresses: [192.0.2.4]}",
                                                   "jp4: {addresses: [192.0.2.4], state: down}"))
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    query = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0,
                                   options=[dns.edns.ECSOption("1.0.16.0", 24)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        for ident in range(3000):
            query.id = ident
            sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
            sock.recv(4096)
    yield server
    server.stop()


def test_status_json(busy: Server) -> None:
    status = httpx.get(f"{busy.status_url}/status.json", timeout=5).json()
    assert status["zone"] == "cdn.example.org" and status["generation"] >= 1
    mirrors = {m["name"]: m for m in status["mirrors"]}
    assert mirrors["jp1"]["usable"] is True and mirrors["jp4"]["usable"] is False
    assert mirrors["jp4"]["admin_state"] == "down"
    assert status["queries"]["total"] >= 3000 and status["queries"]["ecs"] >= 3000
    assert status["queries"]["unique_clients"] == 1  # one client subnet
    assert "pools" not in status["regions"][0]  # the summary has one line per region; the pools are paged
    jp_line = next(r for r in status["regions"] if r["region"] == "country JP")
    assert jp_line["problem"] and jp_line["lost"] == ["jp4"]  # down by the operator's word: lost to JP
    assert status["regions"][0]["problem"]  # regions with a problem come first
    details = httpx.get(f"{busy.status_url}/status.json", params={"region": "JP"}, timeout=5).json()
    assert [r["region"] for r in details["regions"]] == ["country JP"]
    (jp,) = [p for r in details["regions"] for p in r["pools"] if p["name"] == "deb" and p["type"] == "A"]
    assert [(x["target"], x["state"]) for x in jp["lost"]] == [("jp4", "operator down"), ("jpdrained", "drained")]
    paged = httpx.get(f"{busy.status_url}/status.json?page=0", timeout=5).json()
    assert status["region_pages"] == 1 and len(paged["regions"]) == len(status["regions"])
    assert httpx.get(f"{busy.status_url}/status.json?region=XX", timeout=5).status_code == 404
    assert jp["first_answers"] == 3000
    shares = {e["target"]: e for e in jp["entries"]}
    assert set(shares) == {"jp1", "jp2", "jp3"}  # jp4 is down, jpdrained drained
    total = sum(JP_WEIGHTS[n] for n in shares)
    for name, entry in shares.items():
        assert entry["configured_share"] == pytest.approx(JP_WEIGHTS[name] / total)
        assert abs(entry["observed_share"] - entry["configured_share"]) < 0.04  # > 4 sigma at n = 3000


def test_metrics(busy: Server) -> None:
    text = httpx.get(f"{busy.status_url}/metrics", timeout=5).text
    found = re.search(r'dnsbalance_queries_total\{continent="AS",country="JP",rcode="NOERROR",type="A"\} (\S+)', text)
    assert found and float(found.group(1)) >= 3000
    assert re.search(r'dnsbalance_first_answers_total\{name="deb",region="country JP",target="jp1",type="A"\} '
                     r'[1-9]', text)
    assert "dnsbalance_target_up{" not in text  # nothing probed: jp4 is down by the operator, the rest have no url
    assert 'dnsbalance_target_usable{kind="mirror",target="jp4"} 0.0' in text
    assert 'dnsbalance_target_usable{kind="mirror",target="jp1"} 1.0' in text
    assert 'dnsbalance_target_state{kind="mirror",state="operator down",target="jp4"} 1.0' in text
    assert re.search(r"^dnsbalance_table_generation \d", text, re.MULTILINE)
    assert re.search(r"^dnsbalance_ecs_queries_total [1-9]", text, re.MULTILINE)
    assert "dnsbalance_fail_open_names 0.0" in text


def test_status_page_in_headless_chromium(busy: Server, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium missing: .ci/run installs it"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", f"{busy.status_url}/"], capture_output=True, text=True,
                         timeout=120).stdout
    assert "<h1>dnsbalance: cdn.example.org" in dom
    assert re.search(r'<div class="banner orange" id="down">1 down or stale: <span>jp4 \(operator down', dom)
    states = re.findall(r'<tr (?:class="bad" )?data-state="([^"]+)"><td><span[^>]*>[^<]*</span></td><td><strong>'
                        r'(\w+)</strong>', dom.split('id="mirrors"')[1].split("</table>")[0])
    assert states[0] == ("operator down", "jp4") and len(states) == 15, states  # what needs action first
    assert {state for state, _ in states[1:]} == {"not probed"}  # no URL: nothing to judge them by
    assert "country JP" in dom and "answers in the last 15 min, 3000 since" in dom
    shot = tmp_path / "status.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,900", f"{busy.status_url}/"],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty image


def test_status_listener_refuses_other_methods_and_paths(busy: Server) -> None:
    assert httpx.post(f"{busy.status_url}/status.json", timeout=5).status_code == 405
    assert httpx.get(f"{busy.status_url}/nothing", timeout=5).status_code == 404


def test_stats_command_reads_counters_on_disk(busy: Server, config_dir: Path) -> None:
    busy.stop()  # counters are written at exit (and every few seconds)
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "stats", "--config", str(config_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^queries\s+3000$", out, re.MULTILINE)
    assert "distinct clients   about 1 " in out
    assert "with no country    0.0%" in out and "located by ECS     100.0%" in out
    assert "by country:   JP 3000 (100.0%)" in out
    block = out.split("country JP: deb A, 3000 answers")[1].split("\n\n")[0]
    rows = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in
            re.finditer(r"^  (jp\d)\s+\d+\s+([\d.]+)%\s+([\d.]+)%$", block, re.MULTILINE)}
    assert set(rows) == {"jp1", "jp2", "jp3"}  # jp4 is down by the operator's word: not in service
    assert rows["jp1"][0] == 50.0 and rows["jp2"][0] == 33.3 and rows["jp3"][0] == 16.7
    for configured, observed in rows.values():
        assert abs(configured - observed) < 4.0


def test_reload_under_load_drops_nothing(tmp_path: Path, config_dir: Path) -> None:
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load() -> None:
        query = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0,
                                       options=[dns.edns.ECSOption("1.0.16.0", 24)])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            ident = 0
            while not stop.is_set():
                ident = (ident + 1) & 0xFFFF
                query.id = ident
                sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
                try:
                    reply = dns.message.from_wire(sock.recv(4096))
                except socket.timeout:
                    failures.append(f"query {ident} unanswered")
                    continue
                if reply.id != ident or not reply.answer:
                    failures.append(f"query {ident}: {reply.rcode()} {reply.answer}")
                answered[0] += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        jp = config_dir / "country" / "JP.yaml"
        for round_ in range(6):
            jp.write_text(f"deb:\n  jp1: {round_ * 100}\n  jp2: 500\n")
            result = subprocess.run([sys.executable, "-m", "dnsbalance", "reload", "--config", str(config_dir)],
                                    capture_output=True, text=True, cwd=ROOT, timeout=60)
            assert result.returncode == 0 and "sent SIGHUP" in result.stdout, result.stdout + result.stderr
            time.sleep(0.3)
        jp.write_text("deb:\n  nosuch: 1\n")  # refused before any signal is sent
        result = subprocess.run([sys.executable, "-m", "dnsbalance", "reload", "--config", str(config_dir)],
                                capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 1 and "unknown mirror 'nosuch'" in result.stderr
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop()
    assert server.log().count("configuration reloaded") == 6
    assert failures == [] and answered[0] > 1000
