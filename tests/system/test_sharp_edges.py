"""Issue 15 item 7, the sharp edges an operator meets first: httpx's line per probe, a `--status` typo, bind
errors, a tab in YAML, `explain` on down mirrors and on names outside the zone, `probe` and `state: down`,
`stats | head`, and `--config` before the subcommand."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import dns.message
import dns.query
import dns.rcode
import pytest

from dnsbalance.cli import main
from dnsbalance.configuration.load import check_config
from dnsbalance.health.state import HealthState, MirrorHealth, save
from tests.harness import ROOT, Server, make_config, start_server
from tests.mirrors import Archive, Mirror

NOBODY = 65534


def dnsbalance(*args: str, user: list[str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(user or []), sys.executable, "-m", "dnsbalance", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def set_urls(config: Path, urls: dict[str, str], states: dict[str, str] | None = None) -> None:
    """Give mirrors of the fixture zone a `url:` (so they are probed) and an operator `state:`; their addresses
    become the URL's loopback host, where their test servers listen (every address is probed)."""
    text = (config / "mirrors.yaml").read_text()
    for name, url in urls.items():
        extra = f", state: {states[name]}" if states and name in states else ""
        host = urlsplit(url).hostname
        text, count = re.subn(rf"^  {name}: {{addresses: (\[.*?\])}}$",
                              rf"  {name}: {{addresses: [{host}], url: '{url}'{extra}}}", text, flags=re.M)
        assert count == 1, name
    (config / "mirrors.yaml").write_text(text)


@pytest.fixture
def fleet() -> Iterator[dict[str, Mirror]]:
    archive = Archive()
    mirrors = {name: Mirror(archive) for name in ("jp1", "jp2")}
    yield mirrors
    for mirror in mirrors.values():
        mirror.stop()


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_httpx_logs_no_line_per_probe_unless_debugging(level: str, config_dir: Path, tmp_path: Path,
                                                      fleet: dict[str, Mirror]) -> None:
    set_urls(config_dir, {name: mirror.url for name, mirror in fleet.items()})
    with (config_dir / "dnsbalance.yaml").open("a") as handle:
        handle.write("health: {interval: 1, timeout: 2}\n")
    server = start_server(config_dir, tmp_path / "log", ipv6=False, extra=("--log-level", level))
    try:
        server.wait_cycles(2, timeout=20)
    finally:
        server.stop()
    assert fleet["jp1"].requests >= 2 and fleet["jp2"].requests >= 2
    requests = re.findall(r"httpx: HTTP Request: GET http://127\.0\.0\.1", server.log())
    assert (len(requests) >= 4) if level == "DEBUG" else requests == [], server.log()


def test_a_status_typo_stops_before_anything_binds(config_dir: Path) -> None:
    for typo in ("127.0.0.1:80800", "localhost:8053", "127.0.0.1"):
        result = dnsbalance("serve", "--config", str(config_dir), "--listen", "127.0.0.1:0", "--status", typo)
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1 and "--status:" in errors[0], result.stderr
        assert "serving" not in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def open_root(country_mmdb: Path) -> Iterator[Path]:
    """A config folder that `nobody` can read (pytest's tmp_path is root's, mode 0700)."""
    base = Path(tempfile.mkdtemp(prefix="dnsbalance-edges-"))
    base.chmod(0o755)
    make_config(base / "config", country_mmdb)
    for folder, _, files in os.walk(base):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    yield base / "config"
    shutil.rmtree(base)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bind_errors_name_the_address_in_one_line(workers: str, open_root: Path) -> None:
    """EADDRINUSE, EADDRNOTAVAIL (an address this host does not have; nothing is sent) and EACCES (port 53
    as an unprivileged user): exit 1 with one error line that names the address, and no traceback."""
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    unprivileged = (["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
                    if os.geteuid() == 0 else [])
    cases = [
        ([], f"127.0.0.1:{port}", f"127.0.0.1:{port} (UDP) is already in use"),
        ([], "192.0.2.1:5353", "192.0.2.1:5353 (UDP) cannot be bound: no interface of this host has the address "
                               "192.0.2.1"),
        (unprivileged, "127.0.0.1:53", "127.0.0.1:53 (UDP) cannot be bound: permission denied: ports below 1024 "
                                       "need root or CAP_NET_BIND_SERVICE"),
    ]
    try:
        for user, listen, expected in cases:
            result = dnsbalance("serve", "--config", str(open_root), "--listen", listen, "--status", "off",
                                "--workers", workers, user=user)
            assert result.returncode == 1, result.stderr
            errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
            assert len(errors) == 1 and f"not starting: {expected}" in errors[0], result.stderr
            assert "Traceback" not in result.stderr and "serving" not in result.stderr
    finally:
        busy.close()


def test_a_tab_in_yaml_is_called_a_tab_with_file_and_line(config_dir: Path) -> None:
    path = config_dir / "country" / "JP.yaml"
    path.write_text("deb:\n  jp1: 1000\n\tjp2: 4000\n")
    config, problems = check_config(config_dir)
    assert config is None
    assert [str(p) for p in problems if p.path == path] == [
        f"{path}:3: YAML syntax error: a tab character in the indentation (column 1); YAML indents with spaces only"]


def test_explain_says_why_entries_are_down(config_dir: Path) -> None:
    """From the state folder's saved health: a down mirror with its reason and time, an operator's
    `state: down`, a drained entry; the usable count agrees."""
    set_urls(config_dir, {"jp4": "http://127.0.0.1:9/debian/"}, {"jp4": "down"})
    down = MirrorHealth(up=False, reason="stale: serial 2026112100, master has 2026112106", since=1_700_000_000.0,
                        checked=1_700_000_100.0)
    save(HealthState(mirrors={"jp3": down, "jp1": MirrorHealth(up=True, reason="serial matches master")}),
         config_dir / "state" / "health.json")
    result = dnsbalance("explain", "--config", str(config_dir), "1.0.16.1", "deb")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"country JP: table {config_dir}/country/JP.yaml lists 'deb', 2 usable of 5" in out
    assert ("    jp3: DOWN since 2023-11-14 22:13:20 UTC (jp3): stale: serial 2026112100, master has 2026112106"
            in out.splitlines())
    assert "    jp4: DOWN by operator (state: down in mirrors.yaml)" in out.splitlines()
    assert "    jpdrained: drained (priority 10000)" in out.splitlines()


def test_explain_refuses_names_outside_the_zone_as_the_server_does(shared_server: Server,
                                                                  config_dir: Path) -> None:
    for name in ("www.example.com", "www.example.com.", "deb.", "cdn.example.org.example.net"):
        result = dnsbalance("explain", "--config", str(config_dir), "1.0.16.1", name)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].startswith("answer: REFUSED: this server answers only for "
                                                         "cdn.example.org"), result.stdout
        asked = name if name.endswith(".") else name + "."
        reply = dns.query.udp(dns.message.make_query(asked, "A"), "127.0.0.1", port=shared_server.port, timeout=3)
        assert reply.rcode() == dns.rcode.REFUSED
    for name in ("deb", "deb.cdn.example.org.", "DEB.cdn.example.org"):  # relative, absolute, any case: in the zone
        result = dnsbalance("explain", "--config", str(config_dir), "1.0.16.1", name)
        assert result.stdout.startswith("name: deb.cdn.example.org (owner 'deb'"), result.stdout
    result = dnsbalance("explain", "--config", str(config_dir), "1.0.16.1", "nothere")
    assert result.stdout.splitlines()[-1] == "answer: NXDOMAIN: no table defines this name"


def test_probe_does_not_count_a_mirror_drained_by_its_operator(config_dir: Path, fleet: dict[str, Mirror]) -> None:
    set_urls(config_dir, {name: mirror.url for name, mirror in fleet.items()}, {"jp2": "down"})
    result = dnsbalance("probe", "--config", str(config_dir))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert re.search(r"\bok\b", rows["jp1"]) and "drained" in rows["jp2"]
    assert rows["jp2"].endswith("; not served: state: down in mirrors.yaml")
    assert "1 of 2 mirrors usable" in result.stdout


def test_stats_into_a_closed_pipe_ends_without_a_traceback(config_dir: Path) -> None:
    """`dnsbalance stats | head -1` with the reader gone before the first write: no traceback, no
    "Exception ignored" at exit, the status a shell gives a command ended by SIGPIPE."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone: every write fails with EPIPE
    try:
        process = subprocess.run([sys.executable, "-m", "dnsbalance", "stats", "--config", str(config_dir)],
                                 cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(write)
    assert process.returncode == 141, process.stderr
    assert process.stderr == ""
    shown = subprocess.run(["bash", "-o", "pipefail", "-c",
                            f"{sys.executable} -m dnsbalance stats --config {config_dir} | head -1"],
                           cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert shown.stdout.count("\n") == 1 and shown.stderr == "", shown.stderr


def test_config_before_or_after_the_subcommand(config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["--config", str(config_dir), "check"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("ok: zone cdn.example.org")
    assert main(["check", "--config", str(config_dir)]) == 0
    capsys.readouterr()
    # given twice, the one after the subcommand is the subcommand's own
    assert main(["--config", str(tmp_path / "missing"), "check", "--config", str(config_dir)]) == 0
    capsys.readouterr()
    assert main(["--config", str(tmp_path / "missing"), "check"]) == 1
    assert "configuration folder does not exist" in capsys.readouterr().out
    assert config_dir == tmp_path / "config"
    monkeypatch.chdir(tmp_path)  # no --config at all: ./config
    assert main(["check"]) == 0
