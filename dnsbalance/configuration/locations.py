"""Where the configuration and the state folder are when nobody says.

The configuration folder: `--config DIR`, else `$DNSBALANCE_CONFIG`, else `./config` when it exists (a checkout,
the quickstart), else `/etc/dnsbalance` (an installation: the deploy kit's layout), so that every command works
from any working directory once installed.

The state folder, when `state_dir:` is left out, is never inside the configuration folder, so that copying
`config/` (to another host, into /etc, into git) never copies a pid file, health state or counters with it.
It depends on the configuration folder's path alone, never on the user: the server (run as its own user) and
an operator's `reload` or `status` (run as root or another user) must find the same folder.
  /etc/NAME (any folder under /etc)  ->  /var/lib/NAME   (systemd's StateDirectory=NAME, the FHS place)
  anywhere else, e.g. ./config       ->  ./config-state  (beside it, named after it: two folders never share)
except after an upgrade: a configuration folder whose old default `state/` holds a server's state (its health,
lock or DNSSEC key) keeps it, so that an upgrade never loses the zone's signing key or its health (`check` warns
and says how to move it).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CONFIG_VARIABLE = "DNSBALANCE_CONFIG"
LOCAL_CONFIG = Path("config")
SYSTEM_CONFIG = Path("/etc/dnsbalance")
ETC = Path("/etc")
VAR_LIB = Path("/var/lib")
OLD_DEFAULT_STATE = "state"  # state_dir's default before issue 26: inside the configuration folder
# what shows a server ran with the old default: its health, its instance lock, the zone's DNSSEC key
OLD_STATE_MARKERS = ("health.json", "dnsbalance.lock", "keys/zone.key")


def default_config(environ: Mapping[str, str] = os.environ, cwd: Path | None = None) -> Path:
    """The configuration folder when no --config is given."""
    given = environ.get(CONFIG_VARIABLE, "").strip()
    if given:
        return Path(given)
    local = (cwd / LOCAL_CONFIG) if cwd is not None else LOCAL_CONFIG
    return LOCAL_CONFIG if local.is_dir() else SYSTEM_CONFIG


def default_state_dir(config_dir: Path) -> Path:
    """The state folder of a configuration folder whose dnsbalance.yaml has no `state_dir:`."""
    folder = Path(os.path.abspath(config_dir))  # not resolve(): the path as given, symbolic links kept
    if holds_old_state(folder):
        return folder / OLD_DEFAULT_STATE
    return default_state_dir_ignoring_old(folder)


def default_state_dir_ignoring_old(config_dir: Path) -> Path:
    """The default state folder of a configuration folder that holds no old state."""
    folder = Path(os.path.abspath(config_dir))
    if folder != ETC and folder.is_relative_to(ETC):
        return VAR_LIB / folder.relative_to(ETC)
    return folder.parent / f"{folder.name or 'config'}-state"


def holds_old_state(config_dir: Path) -> bool:
    """Whether the configuration folder's old default state folder holds a server's state."""
    old = config_dir / OLD_DEFAULT_STATE
    return any((old / marker).exists() for marker in OLD_STATE_MARKERS)
