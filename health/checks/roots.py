"""Where each probed mirror carries each archive: the targets of every per-(mirror, archive) check."""
from __future__ import annotations

from dnsbalance.configuration.model import Archive, Config, Mirror, archives_of, fallback_archive


def probed(config: Config) -> list[Mirror]:
    """Mirrors with a URL are probed; an operator's up/down still wins when the table is built."""
    return [m for m in config.mirrors.values() if m.probed()]


def carried(config: Config) -> list[tuple[Archive, Mirror, str]]:
    """(archive, mirror, base URL) for every archive each probed mirror carries."""
    archives = archives_of(config.settings)
    fallback = fallback_archive(archives)
    return [(archive, mirror, url) for archive in archives for mirror in probed(config)
            if (url := mirror.url_for(archive, fallback))]
