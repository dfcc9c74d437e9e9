"""The configuration's entry points: `check_config` (every problem, and the Config when there is no error) and
`load_config` (the Config, or ConfigError). The reading itself lives in folder.py and the *_file.py modules."""
from __future__ import annotations

from pathlib import Path

from dnsbalance.configuration.folder import check_config
from dnsbalance.configuration.model import Config
from dnsbalance.configuration.problems import ConfigError

__all__ = ["check_config", "load_config"]


def load_config(directory: Path) -> Config:
    """The Config, or ConfigError listing every problem."""
    config, problems = check_config(directory)
    if config is None:
        raise ConfigError(problems)
    return config
