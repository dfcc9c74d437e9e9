"""`reload: {auto_apply: ...}` (issue 15, item 3): edited files are served at the next health cycle only when
the setting is on; off (the default), they wait for `dnsbalance reload`, and the log says once that the files
on disk differ from what is served."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.harness import ROOT, Server, answer_set, start_server

JP = {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}
NOT_APPLIED = "differ from the configuration in service and are not applied"


def short_cycles(config: Path, auto_apply: bool | None) -> None:
    with (config / "dnsbalance.yaml").open("a") as handle:
        handle.write("health: {interval: 1}\n")
        if auto_apply is not None:
            handle.write(f"reload: {{auto_apply: {str(auto_apply).lower()}}}\n")


def page(server: Server, path: str = "/") -> str:
    with urllib.request.urlopen(server.status_url + path, timeout=5) as reply:
        return reply.read().decode()


def configuration(server: Server) -> dict:
    return json.loads(page(server, "/status.json"))["configuration"]


def edit_and_wait(server: Server, config: Path) -> None:
    server.wait_cycles(1, timeout=15)
    (config / "country" / "JP.yaml").write_text("deb:\n  jp2: 0\n")
    server.wait_cycles(3, timeout=20)  # the first may have begun before the write


@pytest.mark.parametrize("workers", ["1", "2"])
def test_auto_apply_on_serves_the_edit_at_the_next_cycle(config_dir: Path, tmp_path: Path, workers: str) -> None:
    short_cycles(config_dir, True)
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False, extra=("--workers", workers))
    try:
        assert answer_set(server) == JP
        edit_and_wait(server, config_dir)
        assert "configuration files changed; reloading before the cycle (reload.auto_apply)" in server.log()
        assert answer_set(server) == {"192.0.2.2"}
    finally:
        server.stop()


def test_auto_apply_off_by_default_waits_for_reload(config_dir: Path, tmp_path: Path) -> None:
    short_cycles(config_dir, None)
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        edit_and_wait(server, config_dir)
        assert answer_set(server) == JP  # not served
        assert server.log().count(NOT_APPLIED) == 1  # said once, not every cycle
        assert "`dnsbalance plan` shows what they change" in server.log()
        assert configuration(server) == {"directory": str(config_dir), "files_differ": True, "auto_apply": False}
        assert "differ from what is served; they apply at `dnsbalance reload`" in page(server)
        result = subprocess.run([sys.executable, "-m", "dnsbalance", "reload", "--config", str(config_dir)],
                                capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert answer_set(server) == {"192.0.2.2"}
        assert configuration(server)["files_differ"] is False and "pending-config" not in page(server)
        # a later edit is reported again
        (config_dir / "country" / "JP.yaml").write_text("deb:\n  jp3: 0\n")
        server.wait_cycles(3, timeout=20)
        assert server.log().count(NOT_APPLIED) == 2
        assert answer_set(server) == {"192.0.2.2"}
    finally:
        server.stop()
