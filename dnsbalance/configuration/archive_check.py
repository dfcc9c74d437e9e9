"""Checks between archives, mirrors and tables: each table name is served from one archive, and a probed
mirror listed under a name must carry that name's archive."""
from __future__ import annotations

from dnsbalance.configuration.checker import Checker
from dnsbalance.configuration.model import (
    Config,
    Settings,
    archives_of,
    fallback_archive,
)


def archive_names(settings: Settings | None) -> tuple[str, ...] | None:
    """The names a mirror's `archives:` may use; None when dnsbalance.yaml could not be read."""
    if settings is None:
        return None
    return tuple(a.name for a in settings.archives)


def carried_archives(check: Checker, config: Config) -> None:
    archives = archives_of(config.settings)
    fallback = fallback_archive(archives)
    for table, name, archive, mirror in config.mirror_listings():
        if not mirror.probed() or mirror.url_for(archive, fallback):
            continue
        carried = sorted(mirror.urls) + ([fallback.name] if mirror.url and fallback.name not in mirror.urls else [])
        check.error(table.source, table.line_of(name),
                    f"{name}: mirror '{mirror.name}' does not carry archive '{archive.name}' that {name} is "
                    f"served from (it carries: {', '.join(carried) or 'nothing'})")
    listed = {name for table in config.tables() for name in table.names}
    for archive in archives:
        for name in archive.names:
            if name not in listed:
                check.warning(config.directory / "dnsbalance.yaml", archive.line,
                              f"archive '{archive.name}': no table has the name '{name}'")
