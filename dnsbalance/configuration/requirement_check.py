"""`health: require:` in dnsbalance.yaml names table names: each must be one some table serves, and an address name
(a requirement on an SRV name of relays means nothing)."""
from __future__ import annotations

from dnsbalance.configuration.checker import Checker
from dnsbalance.configuration.model import SRV_NAMES, Config
from dnsbalance.configuration.settings_file import FILE


def required_names(check: Checker, config: Config) -> None:
    listed = {name for table in config.tables() for name in table.names}
    path = config.directory / FILE
    for name in config.settings.require:
        line = config.settings.require_lines.get(name, 1)
        if name in SRV_NAMES:
            check.error(path, line, f"health: require: {name} is a relay SRV name; architectures are a mirror's")
        elif name not in listed:
            check.error(path, line, f"health: require: no table has the name '{name}'")
