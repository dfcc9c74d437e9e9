"""The status page of a fleet in trouble (issue 15 item 4), with real HTTP mirrors dead or stale, read in headless
Chromium: the fail-open banner, down and stale mirrors listed before the up ones with their reasons, lost mirrors
still listed in their region; and the JSON summary paged by region."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx

from tests.harness import probe_everything, start_server, wait_cycles
from tests.mirrors import Mirror


def dom_of(url: str, profile: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium missing: .ci/run installs it"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"]
    return subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout


def test_fleet_in_trouble_shows_what_needs_action_first(tmp_path: Path, config_dir: Path,
                                                       zone_fleet: dict[str, Mirror]) -> None:
    probe_everything(config_dir, zone_fleet)
    settings = config_dir / "dnsbalance.yaml"  # room for a loaded machine: a slow probe is not a stale mirror
    settings.write_text(settings.read_text().replace("timeout: 0.5", "timeout: 4"))
    zone_fleet["jp3"].behaviour = "stale"
    for name in ("jp4", "def1", "def2"):  # the default table's mirrors dead: it fails open
        zone_fleet[name].stop()
    server = start_server(config_dir, tmp_path / "log", ipv6=False)
    try:
        wait_cycles(server, 2)
        dom = dom_of(f"{server.status_url}/", tmp_path / "profile")
        summary = httpx.get(f"{server.status_url}/status.json", timeout=10).json()
        jp = httpx.get(f"{server.status_url}/status.json?region=country+JP", timeout=10).json()
    finally:
        server.stop()
    assert re.search(r'<div class="banner red" id="fail-open">FAIL OPEN: [^<]*deb A', dom)
    assert re.search(r'id="down">4 down or stale: <span>[^<]*jp4 \(down', dom)
    mirrors = dom.split('id="mirrors"')[1].split("</table>")[0]
    order = re.findall(r'data-state="([^"]+)"><td><span[^>]*>[^<]*</span></td><td><strong>(\w+)</strong>', mirrors)
    states = [state for state, _ in order]
    assert sorted(name for _, name in order[:4]) == ["def1", "def2", "jp3", "jp4"], order
    assert set(states[:4]) == {"down", "stale"} and set(states[4:]) == {"up"}, order  # trouble first
    assert "connection" in mirrors.split(">jp4<")[1].split("</tr>")[0]  # the reason, on the mirror's line
    assert dom.index("country JP") < dom.index("continent EU")  # regions with a problem first
    rows = {m["name"]: m for m in summary["mirrors"]}
    assert rows["jp3"]["state"] == "stale" and rows["jp4"]["state"] == "down" and rows["jp4"]["since"]
    assert rows["jp4"]["history"][-1][2] == "down" and rows["jp1"]["last_latency"] > 0
    (deb,) = [p for p in jp["regions"][0]["pools"] if p["name"] == "deb" and p["type"] == "A"]
    assert {x["target"] for x in deb["entries"]} == {"jp1", "jp2"}
    assert {(x["target"], x["state"]) for x in deb["lost"]} == {("jp3", "stale"), ("jp4", "down"),
                                                                ("jpdrained", "drained")}
