"""The status port is the server's as much as its DNS ports (issue 26 item 1): one in use stops the start with one
line naming it and what to do, and the page and its JSON say which instance they belong to, so that an operator
never reads another instance's page believing it is this one's."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, Server, start_server


def write_config(folder: Path, status: str | None = None) -> Path:
    """A zone with one mirror and no url (nothing probed); no state_dir: the default, beside the folder."""
    folder.mkdir(parents=True)
    (folder / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\nlisten: ['127.0.0.1:0']\n"
        + (f"status: {status}\n" if status else ""))
    (folder / "mirrors.yaml").write_text("mirrors:\n  a: {addresses: [192.0.2.1]}\n")
    (folder / "default.yaml").write_text("deb:\n  a: 0\n")
    return folder


def serve(config: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config), *more],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def refused_for_status(result: subprocess.CompletedProcess[str], address: str) -> None:
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].endswith(f"not starting: status page {address} is already in use: another dnsbalance's "
                              "status page or another program listens there; give this server its own with "
                              "--status HOST:PORT (or `status:` in dnsbalance.yaml), or none with --status off")
    assert "serving" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_status_port_in_use_stops_the_start(tmp_path: Path, workers: str) -> None:
    """The configuration's `status:` taken by another program's listening socket: exit 1, one line, nothing
    left behind (pid file, instance file), and the DNS port never answered."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        config = write_config(tmp_path / "c", status=address)
        result = serve(config, "--workers", workers)
        refused_for_status(result, address)
    state = tmp_path / "c-state"
    assert not (state / "dnsbalance.pid").exists() and not (state / "instance.json").exists()


def test_a_second_instance_on_the_first_ones_status_port_is_refused(tmp_path: Path) -> None:
    first = start_server(write_config(tmp_path / "one"), tmp_path / "one.log", ipv6=False)
    try:
        address = f"127.0.0.1:{first.status_port}"
        second = write_config(tmp_path / "two")  # its own state folder: only the port is shared
        refused_for_status(serve(second, "--status", address), address)
        page = httpx.get(f"{first.status_url}/status.json", timeout=5).json()
        assert page["instance"]["pid"] == first.process.pid  # the page is still the first one's, and says so
        with_hint = subprocess.Popen([sys.executable, "-m", "dnsbalance", "serve", "--config", str(second),
                                      "--status", "off"], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        try:  # the hint works: --status off starts it beside the first
            assert with_hint.stdout is not None
            for line in with_hint.stdout:
                if "(udp, tcp)" in line:
                    break
            assert with_hint.poll() is None
        finally:
            with_hint.terminate()
            with_hint.wait(timeout=15)
    finally:
        first.stop()


def test_the_page_and_its_json_say_which_instance_they_belong_to(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c")
    server: Server = start_server(config, tmp_path / "log", ipv6=True)
    try:
        instance = httpx.get(f"{server.status_url}/status.json", timeout=5).json()["instance"]
        html = httpx.get(f"{server.status_url}/", timeout=5).text
    finally:
        server.stop()
    assert instance == {
        "zone": "cdn.example.org", "config": str(config), "state_dir": str(tmp_path / "c-state"),
        "listen": [f"127.0.0.1:{server.port}", f"[::1]:{server.port6}"],
        "status": f"127.0.0.1:{server.status_port}", "pid": server.process.pid, "name": None,
        "started": instance["started"]}
    line = re.search(r'<p class="meta" id="instance">(.*?)</p>', html)
    assert line, html[:2000]
    assert line.group(1) == (f"pid {server.process.pid}, configuration <code>{config}</code>, DNS on "
                             f"127.0.0.1:{server.port}, [::1]:{server.port6}, state in <code>{tmp_path / 'c-state'}"
                             "</code>.")
    assert not (tmp_path / "c-state" / "instance.json").exists()  # removed at exit with the pid file
    assert sorted(p.name for p in config.iterdir()) == ["default.yaml", "dnsbalance.yaml", "mirrors.yaml"]


def test_a_restart_takes_the_same_status_port_at_once(tmp_path: Path) -> None:
    """Bound before the start with SO_REUSEADDR, as asyncio bound it: the connections the page closed
    (TIME_WAIT on the server's side) do not stop the next server from taking the port."""
    config = write_config(tmp_path / "c")
    first = start_server(config, tmp_path / "one.log", ipv6=False)
    port = first.status_port
    try:
        for _ in range(3):
            assert httpx.get(f"{first.status_url}/status.json", timeout=5).status_code == 200
    finally:
        first.stop()
    log = (tmp_path / "two.log").open("wb")
    again = subprocess.Popen([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config), "--status",
                              f"127.0.0.1:{port}"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    second = Server(again, 0, None, tmp_path / "two.log", port)
    try:
        second.wait_for_log(rf"/metrics on http://127\.0\.0\.1:{port}/")
        assert json.loads(httpx.get(f"{second.status_url}/status.json", timeout=5).text)["instance"]["pid"] == again.pid
    finally:
        second.stop()
        log.close()


def test_a_dns_port_in_use_names_listen(tmp_path: Path) -> None:
    """As for the status port: the line names the address and the option that moves it."""
    config = write_config(tmp_path / "c")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        result = serve(config, "--listen", address, "--status", "off")
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and errors[0].endswith(
        f"not starting: {address} (UDP) is already in use: another dnsbalance or DNS server is listening there; "
        "serve elsewhere with --listen HOST:PORT (or `listen:` in dnsbalance.yaml)"), result.stderr


def test_commands_read_local_config_when_there_is_one(tmp_path: Path) -> None:
    """No --config and no DNSBALANCE_CONFIG: ./config where it exists; without it, /etc/dnsbalance (named
    when it is missing too, with both ways to say another folder)."""
    write_config(tmp_path / "config")
    env = {k: v for k, v in os.environ.items() if k != "DNSBALANCE_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    here = subprocess.run([sys.executable, "-m", "dnsbalance", "check"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=env)
    assert here.returncode == 0 and here.stdout.startswith("ok: zone cdn.example.org"), here.stdout + here.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    if Path("/etc/dnsbalance").exists():
        pytest.skip("this host has /etc/dnsbalance: the fallback would read it")
    nowhere = subprocess.run([sys.executable, "-m", "dnsbalance", "check"], cwd=empty, capture_output=True,
                             text=True, timeout=60, env=env)
    assert nowhere.returncode == 1 and nowhere.stderr.strip() == (
        "no configuration folder: neither ./config nor /etc/dnsbalance exists; give --config DIR or set "
        "DNSBALANCE_CONFIG"), nowhere.stderr
    for command in ("status", "probe"):  # monitoring-plugin commands: UNKNOWN (3), the line on stdout
        unknown = subprocess.run([sys.executable, "-m", "dnsbalance", command], cwd=empty, capture_output=True,
                                 text=True, timeout=60, env=env)
        assert unknown.returncode == 3 and unknown.stdout.startswith(
            "DNSBALANCE UNKNOWN - no configuration folder: neither ./config"), (command, unknown)
