"""SIGHUP: a good configuration is swapped in; a bad one is refused with file:line and the old one stays."""
from __future__ import annotations

from pathlib import Path

from tests.harness import Server, answer_set, reload_and_wait


def test_sighup_applies_good_and_refuses_bad_config(server: Server, config_dir: Path) -> None:
    assert answer_set(server) == {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}

    (config_dir / "country" / "JP.yaml").write_text("deb:\n  jp1: 0\n  jp2: 10000\n")
    reload_and_wait(server, "configuration reloaded", 1)
    assert answer_set(server) == {"192.0.2.1"}

    (config_dir / "country" / "JP.yaml").write_text("deb:\n  jp1: 0\n  nosuch: 5\n")
    (config_dir / "mirrors.yaml").write_text("mirrors: [broken\n")
    reload_and_wait(server, "reload refused", 2)
    log = server.log()
    assert f"reload refused: {config_dir}/mirrors.yaml:1: YAML syntax error: the '[' on line 1 is never closed" in log
    assert f"reload refused: {config_dir}/country/JP.yaml:3: deb: unknown mirror 'nosuch'" in log
    assert answer_set(server) == {"192.0.2.1"}  # the running table stays
    assert server.process.poll() is None
