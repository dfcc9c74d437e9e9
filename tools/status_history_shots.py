#!/usr/bin/env python3
"""Screenshots of the status page's history views and of a drain (issue 26 items 3-5), in headless Chromium:

    DIR/status-outage-6h.png   the 6 h view, jp2 down for 30 s two hours ago (a 2 px red mark in its strip)
    DIR/status-drain.png       jp3 drained with `dnsbalance drain jp3 --for 2h --reason ...`: its badge, reason,
                               "since" and strip say drained, and a banner names it
    DIR/status-7d.png          the 7 d view of the same week of history

The test zone with a real HTTP mirror on 127.0.0.1 per mirror (tests/mirrors.py); a week of up/down history
cannot be waited for, so it is written into the event log before start, as the server would have written it.

    python tools/status_history_shots.py [--shots docs]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.status_page import fleet_config, seed_history, shoot  # noqa: E402
from tests.harness import start_server  # noqa: E402
from tests.mirrors import Archive, Mirror  # noqa: E402

HOUR = 1.0
DAY = 24.0
THIRTY_SECONDS = 30 / 3600


def week() -> dict[str, list[tuple[float, bool, str]]]:
    """(hours ago, up, reason) per mirror: a 30 s outage, flaps over the day and the week."""
    return {
        "jp1": [(7 * DAY, True, "serial matches master")],
        "jp2": [(7 * DAY, True, "serial matches master"), (2 * HOUR, False, "cannot connect: timed out"),
                (2 * HOUR - THIRTY_SECONDS, True, "serial matches master")],
        "jp3": [(7 * DAY, True, "serial matches master"), (3 * DAY, False, "stale: serial 2026112100"),
                (3 * DAY - 5 * HOUR, True, "serial matches master")],
        "eu1": [(7 * DAY, True, "serial matches master"), (20 * HOUR, False, "HTTP 503"),
                (19 * HOUR, True, "serial matches master"), (5 * DAY, False, "HTTP 503"),
                (5 * DAY - 2, True, "serial matches master")],
        "de1": [(6 * DAY, True, "serial matches master"), (4 * HOUR, False, "cannot connect: refused"),
                (4 * HOUR - 0.1, True, "serial matches master")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", type=Path, default=ROOT / "docs", help="where to save the PNGs (default docs/)")
    args = parser.parse_args()
    archive = Archive()
    names = ["jp1", "jp2", "jp3", "jp4", "jpdrained", "as1", "as2", "eu1", "eu2", "de1", "de2", "kr1", "def1",
             "def2", "v6only", "master"]
    mirrors = {name: Mirror(archive, "fresh") for name in names}
    server = None
    try:
        with tempfile.TemporaryDirectory() as base:
            config = fleet_config(Path(base), mirrors)
            seed_history(config, week())
            server = start_server(config, Path(base) / "log", ipv6=False)
            server.wait_cycles(2, timeout=60)
            shoot(f"{server.status_url}/", args.shots / "status-outage-6h.png", height=900)
            done = subprocess.run([sys.executable, "-m", "dnsbalance", "drain", "jp3", "--for", "2h", "--reason",
                                   "kernel upgrade", "--config", str(config)], capture_output=True, text=True,
                                  cwd=ROOT, timeout=60)
            print(done.stdout.strip(), done.stderr.strip())
            time.sleep(2)  # a little drained time in the strip
            shoot(f"{server.status_url}/", args.shots / "status-drain.png", height=1350)
            shoot(f"{server.status_url}/?history=7d", args.shots / "status-7d.png", height=900)
            server.stop()
    finally:
        if server is not None:
            server.stop()
        for mirror in mirrors.values():
            mirror.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
