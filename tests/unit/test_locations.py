"""Where the configuration and state folders are when nobody says (configuration/locations.py)."""
from __future__ import annotations

from pathlib import Path

from dnsbalance.configuration.locations import default_config, default_state_dir


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
