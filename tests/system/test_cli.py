"""The command line: explain, and serve refusing a bad configuration."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnsbalance", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_explain_country_table(config_dir: Path) -> None:
    result = run("explain", "--config", str(config_dir), "1.0.16.9", "deb")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "client: country JP, continent AS" in out
    assert "A: answered from the country JP table, usable entries" in out
    assert "  jp1                9000   47.4%  up      192.0.2.1" in out  # 9000 / 19000
    assert "jpdrained" not in out.split("A: answered")[1]  # never answered; the tables tried say why
    assert "    jpdrained: drained (priority 10000)" in out.split("A: answered")[0]
    # JP has only two IPv6 mirrors
    assert "AAAA: answered from the country JP table" in out


def test_explain_fallback_and_nxdomain(config_dir: Path) -> None:
    out = run("explain", "--config", str(config_dir), "4.0.0.1", "deb.cdn.example.org.").stdout
    assert "continent SA: no table" in out and "A: answered from the default table" in out
    out = run("explain", "--config", str(config_dir), "4.0.0.1", "nothing").stdout
    assert "answer: NXDOMAIN" in out


def test_serve_refuses_bad_config(config_dir: Path) -> None:
    (config_dir / "default.yaml").write_text("deb:\n  nosuch: 1\n")
    result = run("serve", "--config", str(config_dir), "--listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert f"{config_dir}/default.yaml:2: deb: unknown mirror 'nosuch'" in result.stderr
    assert "not starting" in result.stderr


def test_serve_rejects_bad_listen(config_dir: Path) -> None:
    result = run("serve", "--config", str(config_dir), "--listen", "localhost:53")
    assert result.returncode == 2 and "is not HOST:PORT" in result.stderr
