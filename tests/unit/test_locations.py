"""Where the configuration and state folders are when nobody says (configuration/locations.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

from dnsbalance.configuration.locations import default_config, default_state_dir
from dnsbalance.configuration.state_dir import state_dir_problems
from tests.harness import ROOT


def test_the_configuration_folder_is_the_variable_else_local_config_else_etc(tmp_path: Path) -> None:
    assert default_config({}, tmp_path) == Path("/etc/dnsbalance")  # no ./config here: an installation
    (tmp_path / "config").mkdir()
    assert default_config({}, tmp_path) == Path("config")
    assert default_config({"DNSBALANCE_CONFIG": "/srv/dns"}, tmp_path) == Path("/srv/dns")  # over ./config too
    assert default_config({"DNSBALANCE_CONFIG": "  "}, tmp_path) == Path("config")  # blank: not set


def test_the_state_folder_is_never_inside_the_configuration_folder(tmp_path: Path) -> None:
    assert default_state_dir(Path("/etc/dnsbalance")) == Path("/var/lib/dnsbalance")  # the unit's StateDirectory
    assert default_state_dir(Path("/etc/dnsbalance-eu/")) == Path("/var/lib/dnsbalance-eu")
    assert default_state_dir(Path("/etc/dnsbalance/../dnsbalance")) == Path("/var/lib/dnsbalance")
    assert default_state_dir(tmp_path / "config") == tmp_path / "config-state"
    assert default_state_dir(tmp_path / "other") == tmp_path / "other-state"  # two folders never share one
    relative = default_state_dir(Path("config"))
    assert relative.is_absolute() and relative == Path.cwd() / "config-state"  # whatever cwd later reads it
    for folder in (Path("/etc/dnsbalance"), tmp_path / "config", Path("config")):
        state = default_state_dir(folder)
        assert folder.absolute() not in (state, *state.parents)


def test_an_upgraded_folder_keeps_its_old_state_folder(tmp_path: Path) -> None:
    """A server run before the default moved kept its health, lock and DNSSEC key in `config/state`: after the
    upgrade it goes on using them (a new key would not match the parent's DS), and `check` says so and how to move."""
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    assert default_state_dir(config) == tmp_path / "config-state"
    (config / "state" / "keys").mkdir(parents=True)
    assert default_state_dir(config) == tmp_path / "config-state"  # an empty folder is no server's state
    (config / "state" / "keys" / "zone.key").write_text("key")
    assert default_state_dir(config) == config / "state"
    problems = [str(problem) for problem in state_dir_problems(config, default_state_dir(config))]
    assert any(f"dnsbalance.yaml:1: warning: state_dir is not set and {config / 'state'} holds the state" in text
               and f"move it to {tmp_path / 'config-state'}" in text for text in problems), problems
