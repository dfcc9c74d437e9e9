"""Each (mirror, archive)'s copy of the archive's stamp file: alive, and fresh against the archive's reference.

Its judgement reads the master's stamp and the ftpsync lock (their own checks) beside its observations, per
archive, through health/reference.py: the reference moves with a quorum of the mirrors, so the verdicts of one
archive are made together."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from dnsbalance.configuration.model import Config, mirror_key
from dnsbalance.health.checks.base import Judged, Probing, Target
from dnsbalance.health.checks.ftpsync_lock import lock_read
from dnsbalance.health.checks.master_stamp import master_read, stamp_url
from dnsbalance.health.checks.roots import carried
from dnsbalance.health.fetch import Fetched, fetch
from dnsbalance.health.observations import Observation, Observed
from dnsbalance.health.reference import Probe, Reference, judge_archive, master_stamp
from dnsbalance.health.settings import PolicySettings
from dnsbalance.health.stamp import Stamp
from dnsbalance.health.verdict import Verdict

NAME = "mirror-stamp"


@dataclass(frozen=True)
class StampTarget(Target):
    url: str  # key: the (mirror, archive) health key
    archive: str


@dataclass(frozen=True)
class StampRead(Observation):
    archive: str
    fetched: Fetched


class MirrorStamp:
    name = NAME

    def targets(self, config: Config) -> Sequence[StampTarget]:
        return [StampTarget(mirror_key(mirror.name, archive), stamp_url(url, archive.stamp), archive.name)
                for archive, mirror, url in carried(config)]

    async def observe(self, target: StampTarget, probing: Probing) -> Observation:
        return StampRead(target.key, target.archive, await fetch(probing.client, target.url, probing.timeout))

    def judge(self, observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference],
              now: float) -> Judged:
        reads = [o for o in observed.of(NAME).values() if isinstance(o, StampRead)]
        verdicts: list[Verdict] = []
        references: dict[str, Reference] = {}
        notes: list[str] = []
        first: Stamp | None = None
        for index, archive in enumerate(settings.archives):
            probes = []
            for read in reads:
                if read.archive == archive.name:
                    lock = lock_read(observed, read.target)
                    probes.append(Probe(read.target, read.fetched, lock.fetched if lock else None,
                                        lock.file if lock else ""))
            master = master_read(observed, archive.name)
            judged = judge_archive(archive, master, probes, previous.get(archive.name), now)
            verdicts += judged.verdicts
            if judged.reference is not None:
                references[archive.name] = judged.reference
            notes.append(judged.note if len(settings.archives) == 1 else f"{archive.name}: {judged.note}")
            if index == 0:
                first = master_stamp(master)[0]
        return Judged(tuple(verdicts), MappingProxyType(references), tuple(notes), first)


CHECK = MirrorStamp()
