"""The master's stamp file, one target per archive that names a master: the reference mirrors are held to.
Read by the mirror stamp check's judgement; it gives no verdict of its own."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dnsbalance.configuration.model import Config, archives_of
from dnsbalance.health.checks.base import NOTHING, Judged, Probing, Target
from dnsbalance.health.fetch import Fetched, fetch
from dnsbalance.health.observations import Observation, Observed
from dnsbalance.health.reference import Reference
from dnsbalance.health.settings import PolicySettings

NAME = "master-stamp"


def stamp_url(base: str, stamp: str) -> str:
    return base.rstrip("/") + "/" + stamp.lstrip("/")


@dataclass(frozen=True)
class MasterTarget(Target):
    url: str  # key: the archive's name


@dataclass(frozen=True)
class MasterRead(Observation):
    fetched: Fetched


class MasterStamp:
    name = NAME

    def targets(self, config: Config) -> Sequence[MasterTarget]:
        return [MasterTarget(a.name, stamp_url(a.master, a.stamp)) for a in archives_of(config.settings) if a.master]

    async def observe(self, target: MasterTarget, probing: Probing) -> Observation:
        return MasterRead(target.key, await fetch(probing.client, target.url, probing.timeout))

    def judge(self, observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference],
              now: float) -> Judged:
        return NOTHING


def master_read(observed: Observed, archive: str) -> Fetched | None:
    """The archive's master stamp as read this cycle; None when the archive has no master."""
    found = observed.of(NAME).get(archive)
    return found.fetched if isinstance(found, MasterRead) else None


CHECK = MasterStamp()
