"""Which mirrors' ftpsync lock names were never confirmed, for `dnsbalance check`: ftpsync names its
`Archive-Update-in-Progress-<MIRRORNAME>` after the machine, so a name neither set with `lock:` nor ever learned
from the mirror's own `project/trace/_hierarchy` (the names the server learned are kept in health.json) is a
guess from the URL's host, and a mirror mid-sync may go unnoticed."""
from __future__ import annotations

import re

from dnsbalance.configuration.mirrors_file import FILE
from dnsbalance.configuration.model import Config, mirror_key
from dnsbalance.configuration.problems import Problem, Severity
from dnsbalance.health.checks.ftpsync_lock import HIERARCHY, lock_name
from dnsbalance.health.checks.roots import carried
from dnsbalance.health.state import HealthState

SHOWN = 10  # past this many, one line says how many more


def unconfirmed_locks(config: Config, state: HealthState) -> list[Problem]:
    """A warning per (mirror, archive) whose lock name is a guess, at the mirror's line of mirrors.yaml."""
    path = config.directory / FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    found: list[Problem] = []
    for archive, mirror, url in carried(config):
        key = mirror_key(mirror.name, archive)
        if mirror.lock is not None or key in state.names:
            continue
        where = f"mirror '{mirror.name}'" + ("" if key == mirror.name else f" ({archive.name})")
        found.append(Problem(path, _line(text, mirror.name), f"{where}: ftpsync lock name never confirmed: "
                             f"neither learned from its {HIERARCHY} nor set with lock:, so lock detection guesses "
                             f"{lock_name(mirror, url)}; set lock: NAME (ftpsync's MIRRORNAME) or lock: off",
                             Severity.WARNING))
    if len(found) > SHOWN:
        rest = len(found) - SHOWN
        found = found[:SHOWN] + [Problem(path, 1, f"and {rest} more mirrors whose ftpsync lock name was never "
                                                  "confirmed", Severity.WARNING)]
    return found


def _line(text: str, name: str) -> int:
    """The line defining mirror `name` in mirrors.yaml (1 when it cannot be found)."""
    found = re.search(rf"^[ \t]+{re.escape(name)}[ \t]*:", text, re.MULTILINE)
    return text.count("\n", 0, found.start()) + 1 if found else 1
