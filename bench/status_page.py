#!/usr/bin/env python3
"""Benchmark and screenshots of the status page: a healthy fleet, a fleet in trouble and a big configuration.

Healthy and in trouble: the test zone with a real HTTP mirror on 127.0.0.1 per mirror (tests/mirrors.py),
health cycles every second; in trouble, jp3 serves a stale stamp, jp4 and the default table's mirrors are
dead (so the default table fails open), de1 answers 500. The hours-long up/down history the strips show
cannot be waited for here: an event log of the last hours is written into the state folder before start
(the server appends its own events to it). Big: bench/table_generation.py's configuration (200 mirrors,
249 countries x 50 names x 8 mirrors), five mirrors down by the operator's word.

Prints, for the big configuration, the time and size of `/status.json` (summary), `?region=JP`, the page and
`/metrics`, and the worst UDP answer time seen while they are fetched. With --shots DIR, saves
DIR/status-healthy.png, status-trouble.png, status-big.png (headless Chromium, 1280 px wide).

    python bench/status_page.py [--shots docs]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dns.edns  # noqa: E402
import dns.message  # noqa: E402

from bench.table_generation import write as write_big  # noqa: E402
from tests.harness import FIXTURES, Server, start_server, write_mmdb  # noqa: E402
from tests.mirrors import Archive, Mirror  # noqa: E402

SUBNETS = {"1.0.16.0": 1200, "3.0.0.0": 500, "2.0.0.0": 300, "5.0.0.0": 200, "4.0.0.0": 100}


def fleet_config(base: Path, mirrors: dict[str, Mirror]) -> Path:
    config = base / "config"
    shutil.copytree(FIXTURES / "zone", config)
    write_mmdb(config / "test.mmdb")
    text = (config / "mirrors.yaml").read_text()
    for name, mirror in mirrors.items():
        text = re.sub(rf"^  {name}: {{addresses: (\[.*?\])}}$", rf"  {name}: {{addresses: \1, url: '{mirror.url}'}}",
                      text, flags=re.MULTILINE)
    (config / "mirrors.yaml").write_text(text)
    with (config / "dnsbalance.yaml").open("a") as handle:
        # addresses: false: the fixture's documentation addresses (192.0.2.x) are never probed, only each URL
        handle.write(f"health: {{interval: 2, timeout: 4, master: '{mirrors['master'].url}', addresses: false}}\n")
    return config


def seed_history(config: Path, flaps: dict[str, list[tuple[float, bool, str]]]) -> None:
    """Events of the last hours, as the server would have logged them: (hours ago, up, reason)."""
    now = time.time()
    lines = []
    for key, changes in flaps.items():
        for hours, up, reason in changes:
            lines.append({"time": now - hours * 3600, "key": key, "up": up, "reason": reason, "mirror": key,
                          "archive": None})
    lines.sort(key=lambda e: e["time"])
    (config / "state").mkdir(exist_ok=True)
    (config / "state" / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))


def traffic(server: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        for subnet, count in SUBNETS.items():
            query = dns.message.make_query("deb.cdn.example.org", "A", use_edns=0,
                                           options=[dns.edns.ECSOption(subnet, 24)])
            for ident in range(count):
                query.id = ident
                sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
                sock.recv(4096)


def shoot(url: str, path: Path, height: int = 2000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium missing: no screenshot", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--disable-background-networking", "--disable-component-update", "--no-first-run",
                        f"--user-data-dir={profile}", f"--screenshot={path}", f"--window-size=1280,{height}", url],
                       capture_output=True, timeout=120)
    print(f"saved {path}")


def fetch(url: str) -> tuple[float, int]:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=120) as response:
        size = len(response.read())
    return time.monotonic() - started, size


def worst_udp_while(server: Server, work: threading.Thread) -> float:
    """Send queries one at a time while `work` runs; the slowest answer time, in seconds."""
    query = dns.message.make_query("name1.cdn.example.org", "A")
    worst = 0.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        work.start()
        while work.is_alive():
            started = time.monotonic()
            sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
            sock.recv(4096)
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.002)
    return worst


def fleet(shots: Path | None, trouble: bool) -> None:
    archive = Archive()
    names = ["jp1", "jp2", "jp3", "jp4", "jpdrained", "as1", "as2", "eu1", "eu2", "de1", "de2", "kr1", "def1",
             "def2", "v6only", "master"]
    mirrors = {name: Mirror(archive, "fresh") for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        config = fleet_config(Path(tmp), mirrors)
        if trouble:
            mirrors["jp3"].behaviour = "stale"
            mirrors["de1"].behaviour = "error500"
            for name in ("jp4", "def1", "def2"):
                mirrors[name].stop()
            seed_history(config, {name: [(5.9, True, "serial matches master")] for name in names if name != "master"}
                         | {
                "jp4": [(5.5, True, "serial matches master"), (1.2, False, "cannot connect: connection refused")],
                "jp3": [(5.8, True, "serial matches master"), (4.0, False, "stale: serial 2026112100"),
                        (3.6, True, "serial matches master"), (0.6, False, "stale: serial 2026112100")],
                "de1": [(5.9, True, "serial matches master"), (2.5, False, "HTTP 500"), (2.2, True, "ok"),
                        (0.2, False, "HTTP 500")],
                "def1": [(5.9, True, "serial matches master"), (0.4, False, "cannot connect: connection refused")],
                "def2": [(5.9, True, "serial matches master"), (0.4, False, "cannot connect: connection refused")],
            })
        else:
            seed_history(config, {name: [(5.9, True, "serial matches master")] for name in names if name != "master"}
                         | {"eu2": [(5.9, True, "ok"), (3.1, False, "cannot connect: timed out"),
                                    (2.7, True, "serial matches master")]})
        server = start_server(config, Path(tmp) / "log", ipv6=False)
        try:
            server.wait_cycles(2, timeout=30)
            traffic(server)
            time.sleep(1.5)
            if shots is not None:
                shoot(f"{server.status_url}/", shots / f"status-{'trouble' if trouble else 'healthy'}.png")
        finally:
            server.stop()
            for mirror in mirrors.values():
                mirror.stop()


def start_slow(config: Path, log_path: Path) -> Server:
    """start_server with room for a big configuration's start-up."""
    process = subprocess.Popen([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config), "--listen",
                                "127.0.0.1:0", "--status", "127.0.0.1:0"], stdout=log_path.open("wb"),
                               stderr=subprocess.STDOUT, cwd=ROOT)
    server = Server(process, 0, None, log_path)
    try:
        server.port = int(server.wait_for_log(r"on 127\.0\.0\.1:(\d+) \(udp, tcp\)", timeout=300).group(1))
        server.status_port = int(server.wait_for_log(r"/metrics on http://127\.0\.0\.1:(\d+)/", timeout=60).group(1))
    except AssertionError:
        server.stop()
        raise
    return server


def big(shots: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = write_big(Path(tmp) / "config", random.Random(1))
        text = (config / "mirrors.yaml").read_text()
        for index in (3, 17, 42, 99, 150):
            text = text.replace(f"  m{index}: {{addresses: [", f"  m{index}: {{state: down, addresses: [")
        (config / "mirrors.yaml").write_text(text)
        with (config / "dnsbalance.yaml").open("a") as handle:
            handle.write("geoip: {database: builtin}\n")
        started = time.monotonic()
        server = start_slow(config, Path(tmp) / "log")
        print(f"big configuration: server up in {time.monotonic() - started:.1f} s")
        try:
            fetch(server.status_url + "/status.json")  # the first, while the server may still be settling
            for path in ("/status.json", "/status.json?region=JP", "/", "/?region=JP", "/metrics"):
                box: dict[str, tuple[float, int]] = {}
                work = threading.Thread(target=lambda p=path: box.setdefault("r", fetch(server.status_url + p)))
                worst = worst_udp_while(server, work)
                spent, size = box["r"]
                print(f"  {path:<24} {size / 1024:9.1f} KiB in {spent:6.2f} s; slowest UDP answer meanwhile "
                      f"{worst * 1000:.1f} ms")
            if shots is not None:
                shoot(f"{server.status_url}/", shots / "status-big.png")
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=Path, help="save screenshots here (e.g. docs)")
    parser.add_argument("--only", choices=["healthy", "trouble", "big"])
    args = parser.parse_args()
    if args.shots is not None:
        args.shots.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "healthy"):
        fleet(args.shots, trouble=False)
    if args.only in (None, "trouble"):
        fleet(args.shots, trouble=True)
    if args.only in (None, "big"):
        big(args.shots)


if __name__ == "__main__":
    main()
