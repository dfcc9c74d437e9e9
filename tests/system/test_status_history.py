"""The status page's history views (issue 26 items 4, 5): a 30-second outage is visible in the 6 h strip (its SVG
geometry, and its red pixels in headless Chromium's rendering), the 24 h and 7 d views reach further back, and a
drained mirror's strip, badge, "since" and reason say drained, not green with a health reason."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.harness import ROOT, start_server
from tests.png import count_colour

STRIP_WIDTH = 240  # dnsbalance/ops/page.py
RED = (0xD2, 0x35, 0x2B)
PURPLE = (0x7B, 0x4F, 0xB8)


def seed(config_dir: Path, now: float) -> None:
    """A health event log as the server writes it: jp2 down for 30 s two hours ago; jp3 down for an hour three
    days ago (only the 7 d view reaches it)."""
    changes = [("jp2", 5 * 3600, True), ("jp2", 2 * 3600, False), ("jp2", 2 * 3600 - 30, True),
               ("jp3", 5 * 86400, True), ("jp3", 3 * 86400, False), ("jp3", 3 * 86400 - 3600, True)]
    lines = [{"time": now - ago, "key": key, "up": up, "reason": "ok" if up else "cannot connect", "mirror": key,
              "archive": None} for key, ago, up in changes]
    (config_dir / "state").mkdir(exist_ok=True)
    (config_dir / "state" / "events.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in sorted(lines, key=lambda e: e["time"])))


def row_of(page: str, name: str) -> str:
    found = re.search(rf"<tr[^>]*><td><span[^>]*>[^<]*</span></td><td><strong>{name}</strong>.*?</tr>", page)
    assert found, f"no row for {name}"
    return found.group(0)


def rects(row: str) -> list[tuple[float, float, str]]:
    return [(float(x), float(w), state) for x, w, state in
            re.findall(r"<rect x='([\d.]+)' y='0' width='([\d.]+)' height='14' fill='#\w+' data-state='(\w+)'", row)]


def test_short_outage_shows_in_6h_and_week_in_7d(tmp_path: Path, config_dir: Path) -> None:
    now = time.time()
    seed(config_dir, now)
    drained = subprocess.run([sys.executable, "-m", "dnsbalance", "drain", "jp1", "--reason", "disk swap",
                              "--config", str(config_dir)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert drained.returncode == 0, drained.stderr
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        page = httpx.get(f"{server.status_url}/", timeout=10).text
        week = httpx.get(f"{server.status_url}/?history=7d", timeout=10).text
        day = httpx.get(f"{server.status_url}/status.json?history=24h", timeout=10).json()
        assert httpx.get(f"{server.status_url}/?history=1y", timeout=10).status_code == 400
        shot = tmp_path / "page.png"
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        assert browser, "chromium missing: tools/install-test-packages installs it"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                        f"--screenshot={shot}", "--window-size=1280,700", f"{server.status_url}/"],
                       capture_output=True, timeout=120)
    finally:
        server.stop()

    # 6 h: the 30 s outage two hours ago is a mark at least 2 px wide, 4/6 of the way along the strip
    downs = [(x, w) for x, w, state in rects(row_of(page, "jp2")) if state == "down"]
    assert len(downs) == 1, rects(row_of(page, "jp2"))
    x, width = downs[0]
    assert width >= 2 and abs(x - STRIP_WIDTH * 4 / 6) < 2, downs
    assert "last 6 h" in page and "<strong>6 h</strong>" in page and "?history=7d" in page
    # ... and Chromium draws it: the page's only red (every other mirror is unprobed, jp1 drained)
    assert count_colour(shot, RED) >= 2 * 10, "no red outage mark in the rendered 6 h strip"
    assert count_colour(shot, PURPLE) > 100  # jp1's drained badge and strip

    # jp3's hour three days ago: not in the 6 h strip, in the 7 d one
    assert not [r for r in rects(row_of(page, "jp3")) if r[2] == "down"]
    weekly = [(x, w) for x, w, state in rects(row_of(week, "jp3")) if state == "down"]
    assert len(weekly) == 1 and abs(weekly[0][0] - STRIP_WIDTH * 4 / 7) < 2, weekly
    assert "last 7 d" in week and "<strong>7 d</strong>" in week
    assert day["health"]["history_seconds"] == 86400
    jp2 = next(m for m in day["mirrors"] if m["name"] == "jp2")
    outage = [s for s in jp2["history"] if s[2] == "down"]
    assert len(outage) == 1 and 29 <= outage[0][1] - outage[0][0] <= 31

    # the drained mirror: its own badge, reason and "since"; its strip drained from the drain on, not green
    jp1 = row_of(page, "jp1")
    assert "s-drained" in jp1 and "drained by" in jp1 and "disk swap" in jp1 and "drained since" in jp1
    assert "serial matches master" not in jp1
    states = [state for _, _, state in rects(jp1)]
    assert states[-1] == "drained" and "up" not in states[-1:], states
    assert "id='drained'>1 drained by operators" in page
