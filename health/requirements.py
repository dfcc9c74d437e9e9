"""What a table name promises (`require:` in dnsbalance.yaml: architectures), as health keys: one verdict per
(mirror, archive) and required architecture, `<mirror key>+<architecture>` (`jaist+arm64`), made by the ftpsync
check from the mirror's own trace and read by the table builder for the names that require it."""
from __future__ import annotations

import re

from dnsbalance.configuration.model import SRV_NAMES, Config, Mirror, archive_for, archives_of, mirror_key

_ARCHITECTURES = re.compile(r"^Architectures:\s*(.*)$", re.MULTILINE)


def arch_key(owner: str, architecture: str) -> str:
    return f"{owner}+{architecture}"


def reads_traces(config: Config) -> bool:
    """The ftpsync check reads each mirror's _hierarchy and own trace: asked for, or needed by `require:`."""
    health = config.settings.health
    return health.enabled and (health.traces or bool(config.settings.require))


def required(config: Config, mirror: Mirror, archive: str) -> tuple[str, ...]:
    """Every architecture some name requires that a table serves from `mirror` out of `archive`."""
    found: set[str] = set()
    for name, architectures in config.settings.require.items():
        if name in SRV_NAMES or archive_for(config.settings, name).name != archive:
            continue
        if any(e.target == mirror.name for table in config.tables() for e in table.names.get(name, ())):
            found.update(architectures)
    return tuple(sorted(found))


def requirement_keys(config: Config) -> dict[str, str]:
    """Every architecture health key, and the mirror it belongs to."""
    keys = {}
    for archive in archives_of(config.settings):
        for mirror in config.mirrors.values():
            for architecture in required(config, mirror, archive.name):
                keys[arch_key(mirror_key(mirror.name, archive), architecture)] = mirror.name
    return keys


def architectures_of(trace: bytes) -> tuple[str, ...] | None:
    """The `Architectures:` ftpsync writes in a mirror's own trace (older ftpsync: `GUESSED:{ amd64 ...}`)."""
    found = _ARCHITECTURES.search(trace.decode("utf-8", "replace"))
    if found is None:
        return None
    words = re.sub(r"GUESSED:|[{}]", " ", found.group(1)).split()
    return tuple(sorted(set(words)))
