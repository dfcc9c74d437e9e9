"""`probe` and `status` as monitoring checks (issue 26 item 6): monitoring-plugin exit codes (0 ok, 1 warning,
2 critical, 3 unknown) and the one-line summary first, against real HTTP mirrors on 127.0.0.1 that are fresh,
stale, failing or refused, and (for `status`) a running server found through its state folder from another
working directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.harness import ROOT, start_server
from tests.mirrors import Archive, Mirror, refused_url

NAMES = ["a", "b", "c", "d", "e"]


@pytest.fixture
def fleet() -> Iterator[dict[str, Mirror]]:
    archive = Archive()
    mirrors = {name: Mirror(archive, "fresh", slow_seconds=3) for name in [*NAMES, "master"]}
    yield mirrors
    for mirror in mirrors.values():
        mirror.stop()


def write_config(folder: Path, urls: dict[str, str], master: str, country: list[str], interval: int = 120) -> Path:
    """default.yaml lists every mirror; country/JP.yaml only `country`. No state_dir: the default applies."""
    (folder / "country").mkdir(parents=True)
    (folder / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n"
        f"health: {{interval: {interval}, timeout: 1, master: '{master}'}}\n")
    (folder / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        # each mirror's address is its URL's host (127.0.0.1, where its test server listens): probed there too
        f"  {name}: {{addresses: [{urlsplit(url).hostname}], url: '{url}'}}\n" for name, url in urls.items()))
    (folder / "default.yaml").write_text("deb:\n" + "".join(f"  {name}: 0\n" for name in urls))
    (folder / "country" / "JP.yaml").write_text("deb:\n" + "".join(f"  {name}: 0\n" for name in country))
    return folder


def dnsbalance(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnsbalance", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def probe(config: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return dnsbalance("probe", "--config", str(config), *more)


def test_probe_exit_codes_follow_the_monitoring_plugin_rules(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    urls = {name: fleet[name].url for name in ["a", "b", "c"]}
    config = write_config(tmp_path / "c", urls, fleet["master"].url, country=["c"])

    healthy = probe(config)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.splitlines()[0].startswith("DNSBALANCE OK - 3 mirrors probed, none failing | mirrors=3 ")

    fleet["b"].behaviour = "stale"  # b fails; every table still has a usable entry: a warning
    warned = probe(config)
    assert warned.returncode == 1, warned.stdout
    first = warned.stdout.splitlines()[0]
    assert first.startswith("DNSBALANCE WARNING - 1 of 3 mirrors failing: b | "), first
    assert "failing mirror b: stale: serial" in warned.stdout

    fleet["c"].behaviour = "error500"  # JP's only mirror: Japan's clients lose their table, a critical
    critical = probe(config)
    assert critical.returncode == 2, critical.stdout
    first = critical.stdout.splitlines()[0]
    assert first.startswith("DNSBALANCE CRITICAL - 1 name with no usable entry in a table: country JP deb A; "
                            "2 of 3 mirrors failing: b, c | "), first
    assert "stranded_names=1" in first and "no usable entry: country JP deb A" in critical.stdout

    # everything failing: the prober's side or an outage, critical either way (b too: its stale stamp is still a
    # trace, which its address serves, so the prober would have reached a mirror)
    fleet["a"].behaviour = fleet["b"].behaviour = "error500"
    every = probe(config, "--json")
    found = json.loads(every.stdout)
    assert every.returncode == 2 and found["status"] == "CRITICAL" and found["code"] == 2
    assert found["prober"] and found["prober"][0].startswith("every mirror failed: ")
    assert "default deb A (failing open)" in found["stranded"]
    assert {t["name"]: t["ok"] for t in found["targets"]} == {
        **{name: False for name in "abc"}, **{f"{name}@127.0.0.1#deb.cdn.example.org": False for name in "abc"}}


def test_four_of_five_mirrors_failing_is_no_longer_ok(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    """The issue's case: `probe` said 0 with 4 of 5 mirrors failing. One still serves every table: a warning
    that names them; in JSON, each with its reason."""
    urls = {name: fleet[name].url for name in ["a", "b", "c", "d"]} | {"e": refused_url()}
    config = write_config(tmp_path / "c", urls, fleet["master"].url, country=["a", "b"])
    fleet["b"].behaviour = "stale"
    fleet["c"].behaviour = "error500"
    fleet["d"].behaviour = "empty"
    result = probe(config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith("DNSBALANCE WARNING - 4 of 5 mirrors failing: b, c, d, e | "
                                                    "mirrors=5 failing_mirrors=4 ")
    found = json.loads(probe(config, "--json").stdout)
    assert found["code"] == 1 and [f["target"] for f in found["failing"]] == ["b", "c", "d", "e"]
    assert found["failing"][1]["reason"] == "HTTP 500" and found["failing"][3]["reason"].startswith("cannot connect")


def test_probe_that_cannot_run_is_unknown(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    config = write_config(tmp_path / "c", {"a": fleet["a"].url}, fleet["master"].url, country=["a"])
    (config / "country" / "JP.yaml").write_text("deb:\n  nosuchmirror: 0\n")
    result = probe(config)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("DNSBALANCE UNKNOWN - ") and "1 configuration error(s)" in result.stdout
    assert "nosuchmirror" in result.stdout and "Traceback" not in result.stderr
    found = json.loads(probe(config, "--json").stdout)
    assert found["status"] == "UNKNOWN" and found["code"] == 3


def wait_status(code: int, config: Path, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`dnsbalance status` from `cwd`, the configuration named by DNSBALANCE_CONFIG, until it exits `code`."""
    deadline = time.monotonic() + timeout
    while True:
        result = dnsbalance("status", cwd=cwd, env={"DNSBALANCE_CONFIG": str(config)})
        if result.returncode == code or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_status_reads_the_running_server_from_anywhere(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    urls = {name: fleet[name].url for name in ["a", "b", "c"]}
    config = write_config(tmp_path / "c", urls, fleet["master"].url, country=["c"], interval=1)
    elsewhere = tmp_path / "elsewhere"  # no ./config here: the variable says where
    elsewhere.mkdir()
    server = start_server(config, tmp_path / "log", ipv6=False)
    try:
        ok = wait_status(0, config, elsewhere)
        assert ok.returncode == 0, ok.stdout + ok.stderr + server.log()
        lines = ok.stdout.splitlines()
        assert lines[0].startswith("DNSBALANCE OK - 3 mirrors probed, none failing")
        assert lines[1] == (f"zone cdn.example.org, pid {server.process.pid}, configuration {config}, DNS on "
                            f"127.0.0.1:{server.port}, status page http://127.0.0.1:{server.status_port}/")

        fleet["b"].behaviour = "stale"
        warned = wait_status(1, config, elsewhere)
        assert warned.returncode == 1, warned.stdout + server.log()
        assert warned.stdout.startswith("DNSBALANCE WARNING - 1 of 3 mirrors failing: b | ")

        fleet["c"].behaviour = "error500"
        critical = wait_status(2, config, elsewhere)
        assert critical.returncode == 2, critical.stdout + server.log()
        assert "no usable entry in a table: country JP deb A" in critical.stdout.splitlines()[0]
        found = json.loads(dnsbalance("status", "--json", "--config", str(config), cwd=elsewhere).stdout)
        assert found["code"] == 2 and found["stranded"] == ["country JP deb A"]
        assert found["instance"]["pid"] == server.process.pid and found["instance"]["zone"] == "cdn.example.org"
    finally:
        server.stop()
    gone = dnsbalance("status", "--config", str(config), cwd=elsewhere)
    assert gone.returncode == 3 and gone.stdout.startswith("DNSBALANCE UNKNOWN - no running dnsbalance holds "
                                                          f"{tmp_path / 'c-state' / 'dnsbalance.lock'}"), gone.stdout


def test_status_of_a_server_without_a_status_page_is_unknown(tmp_path: Path, fleet: dict[str, Mirror]) -> None:
    config = write_config(tmp_path / "c", {"a": fleet["a"].url}, fleet["master"].url, country=["a"])
    log = (tmp_path / "log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config), "--listen",
                               "127.0.0.1:0", "--status", "off"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        result = wait_status(3, config, tmp_path, timeout=5)  # 3 before it starts too: wait for the words
        deadline = time.monotonic() + 20
        while "without a status page" not in result.stdout and time.monotonic() < deadline:
            time.sleep(0.2)
            result = dnsbalance("status", "--config", str(config))
        assert result.returncode == 3
        assert result.stdout.startswith(f"DNSBALANCE UNKNOWN - dnsbalance (pid {server.pid}) runs without a status "
                                        "page"), result.stdout + (tmp_path / "log").read_text()
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
