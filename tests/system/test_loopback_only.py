"""The loopback-only rule every test runs under (tests/conftest.py, health/loopback_only.py): a fixture whose
mirror would be probed at a documentation address (192.0.2.x) makes its test fail, and nothing is sent there."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dnsbalance.health.loopback_only import ENV, NETNS_ENV, loopback, refused
from tests.harness import ROOT
from tests.mirrors import Archive, Mirror

LEAKY_TEST = '''
import subprocess, sys
from pathlib import Path

def test_a_fixture_that_probes_a_documentation_address(tmp_path: Path) -> None:
    (tmp_path / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\\nhealth: {timeout: 1}\\n")
    (tmp_path / "mirrors.yaml").write_text("mirrors:\\n  leaky: {addresses: [192.0.2.7], url: 'URL'}\\n")
    (tmp_path / "default.yaml").write_text("deb:\\n  leaky: 0\\n")
    subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--config", str(tmp_path)], timeout=60)
'''


def write_config(folder: Path, url: str) -> Path:
    folder.mkdir()
    (folder / "dnsbalance.yaml").write_text(
        "zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\nhealth: {timeout: 1}\n")
    (folder / "mirrors.yaml").write_text(f"mirrors:\n  leaky: {{addresses: [192.0.2.7], url: '{url}'}}\n")
    (folder / "default.yaml").write_text("deb:\n  leaky: 0\n")
    return folder


def test_the_prober_refuses_and_records_a_documentation_address(tmp_path: Path) -> None:
    mirror = Mirror(Archive())
    record = tmp_path / "refused"
    try:
        config = write_config(tmp_path / "config", mirror.url)
        env = {**os.environ, ENV: str(record), NETNS_ENV: os.readlink("/proc/self/ns/net")}
        probe = subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--config", str(config)],
                               capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    finally:
        mirror.stop()
    said = record.read_text()
    assert "socket.connect to 192.0.2.7 port" in said, said
    assert {line.split(": ", 1)[1] for line in said.splitlines()} <= {
        f"socket.connect to 192.0.2.7 port {port}" for port in (9, mirror.port)}  # the route check, the probe
    row = next(line for line in probe.stdout.splitlines() if line.startswith("leaky@192.0.2.7#deb.cdn.example.org"))
    assert "FAIL" in row and "cannot connect" in row  # refused before anything left
    assert next(line for line in probe.stdout.splitlines() if line.startswith("leaky ")).split()[1] == "200"


def test_a_test_whose_fixture_probes_outside_loopback_fails(tmp_path: Path) -> None:
    mirror = Mirror(Archive())
    try:
        test = tmp_path / "test_leaky.py"
        test.write_text(LEAKY_TEST.replace("URL", mirror.url))
        env = {key: value for key, value in os.environ.items() if key not in (ENV, NETNS_ENV)}
        ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                              str(test)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    finally:
        mirror.stop()
    assert ran.returncode != 0, ran.stdout
    assert "traffic outside loopback refused" in ran.stdout and "socket.connect to 192.0.2.7" in ran.stdout
    assert "1 passed, 1 error" in ran.stdout  # the test body ran; its teardown failed it


def test_what_counts_as_loopback() -> None:
    assert all(loopback(a) for a in ("127.0.0.1", "127.2.3.4", "::1", "::ffff:127.0.0.3", "localhost", None))
    assert not any(loopback(a) for a in ("192.0.2.1", "2001:db8::1", "10.0.0.1", "ftp.debian.org"))
    assert refused("socket.getaddrinfo", ("ftp.jaist.ac.jp", 80, 0, 0, 0)) == "socket.getaddrinfo of 'ftp.jaist.ac.jp'"
    assert refused("socket.connect", (None, ("127.0.0.1", 80))) is None
    assert refused("subprocess.Popen", ("rsync", ["rsync", "rsync://192.0.2.9/debian/x", "/tmp/x"], None, None)) \
        == "rsync client to 192.0.2.9"
