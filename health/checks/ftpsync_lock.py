"""ftpsync's `Archive-Update-in-Progress-<name>` file at each (mirror, archive) root: a mirror showing it is
mid-sync. Read by the mirror stamp check's judgement; it gives no verdict of its own."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from dnsbalance.configuration.model import Config, Mirror, mirror_key
from health.checks.base import NOTHING, Judged, Probing, Target
from health.checks.master_stamp import stamp_url
from health.checks.roots import carried
from health.fetch import Fetched, fetch
from health.observations import Observation, Observed
from health.reference import Reference
from health.settings import PolicySettings

NAME = "ftpsync-lock"


def lock_name(mirror: Mirror, base: str) -> str:
    """ftpsync's `Archive-Update-in-Progress-<MIRRORNAME>`; MIRRORNAME defaults to the host's name, taken here
    from the URL the mirror is probed at. "" when the mirror says `lock: off`."""
    if mirror.lock is not None:
        return mirror.lock
    return f"Archive-Update-in-Progress-{urlsplit(base).hostname or ''}"


@dataclass(frozen=True)
class LockTarget(Target):
    url: str  # key: the (mirror, archive) health key
    file: str


@dataclass(frozen=True)
class LockRead(Observation):
    file: str
    fetched: Fetched


class FtpsyncLock:
    name = NAME

    def targets(self, config: Config) -> Sequence[LockTarget]:
        return [LockTarget(mirror_key(mirror.name, archive), stamp_url(url, name), name)
                for archive, mirror, url in carried(config) if (name := lock_name(mirror, url))]

    async def observe(self, target: LockTarget, probing: Probing) -> Observation:
        return LockRead(target.key, target.file, await fetch(probing.client, target.url, probing.timeout))

    def judge(self, observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference],
              now: float) -> Judged:
        return NOTHING


def lock_read(observed: Observed, key: str) -> LockRead | None:
    found = observed.of(NAME).get(key)
    return found if isinstance(found, LockRead) else None


CHECK = FtpsyncLock()
