"""A prober with no route for a family (issue 23, the defaults): in a network namespace of the test's own where
only `lo` exists, a mirror's IPv6 addresses cannot be reached at all (connect fails at once, ENETUNREACH). They
are not taken out of the AAAA answers for it: each is "unchecked: no route from the prober" and served on the
verdict of its mirror's other probes, with one warning in `probe`, the log and the status page."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dnsbalance.health.route import no_route
from tests.harness import ROOT


def in_namespace(folder: Path) -> dict:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2)")
    ran = subprocess.run(["unshare", "-rn", sys.executable, "-m", "tests.no_route", str(folder)],
                         capture_output=True, text=True, cwd=ROOT, timeout=180)
    if ran.returncode != 0 and "unshare failed" in ran.stderr:
        pytest.skip(f"cannot make a network namespace here: {ran.stderr.strip()}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout.splitlines()[-1])


def test_unroutable_ipv6_is_served_on_the_mirrors_other_probes(tmp_path: Path) -> None:
    seen = in_namespace(tmp_path)
    # dual: its IPv4 serves the balanced name, so its unreachable IPv6 is served; wronghost: its IPv4 answers 404
    # for the name, so its IPv6 is out with it; v6only: nothing else at the address level, its URL probe decides;
    # dead: its URL refuses connections, out whatever its IPv6
    assert seen["A"] == ["127.0.0.2"]
    assert seen["AAAA"] == ["2001:db8::2", "2001:db8::4"]

    probe = seen["probe"].splitlines()
    row = next(line for line in probe if line.startswith("dual@2001:db8::2#deb.cdn.example.org "))
    assert " ok " in row and "unchecked: no route from the prober to 2001:db8::2 (Network is unreachable); " \
        "served as dual@127.0.0.2#deb.cdn.example.org is" in row
    row = next(line for line in probe if line.startswith("wronghost@2001:db8::3#deb.cdn.example.org "))
    assert "FAIL" in row and "out as the mirror's other addresses are (HTTP 404" in row
    row = next(line for line in probe if line.startswith("v6only@2001:db8::4#deb.cdn.example.org "))
    assert " ok " in row and "served on the mirror's own verdict" in row
    warning = ("WARNING: no route from the prober to 4 served addresses (IPv6: 2001:db8::2, 2001:db8::3, 2001:db8::4, "
               "2001:db8::5): unchecked, each served on its mirror's other probes")
    assert sum(line.startswith(warning) for line in probe) == 1
    # the monitoring verdict: the mirrors failing for what they serve, never for what the prober cannot reach
    assert seen["probe_code"] == 1 and probe[0].startswith("DNSBALANCE WARNING - 2 of 4 mirrors failing: dead, "
                                                           "wronghost"), probe[0]

    # the server: the warning logged once over three or more cycles, and on the status page
    assert seen["log"].count(f"health: {warning}") == 1, seen["log"]
    assert any(w.startswith(warning) for w in seen["status"]["warnings"])
    assert "id='warnings'" in seen["page"] and "no route from the prober to 4 served addresses" in seen["page"]


def test_the_route_check_sends_nothing_and_knows_loopback() -> None:
    """On the host, loopback is routable; a family or source mismatch is no route, said as such."""
    assert no_route("127.0.0.1") is None and no_route("::1") is None
    assert no_route("::1", source="127.0.0.1") == "health.source 127.0.0.1 is not an IPv6 address"
