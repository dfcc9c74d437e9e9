"""One probe cycle: every check's targets observed concurrently under one gate and one deadline each (mirrors and
relays together, so a cycle takes about one timeout), filed by check and target name; then the policy reads them.

`observe` is the I/O; `run_cycle` adds the policy's reading of the observations (no decision) for `probe`."""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx

from dnsbalance.configuration.model import Config
from dnsbalance.health import policy
from dnsbalance.health.checks import CHECKS
from dnsbalance.health.checks.base import Check, Judged, Probing, Target
from dnsbalance.health.external import Source
from dnsbalance.health.observations import External, Observation, Observed
from dnsbalance.health.reference import Reference
from dnsbalance.health.settings import policy_settings
from dnsbalance.health.stamp import Stamp
from dnsbalance.health.state import HealthState
from dnsbalance.health.verdict import TargetKind, Verdict


WARNING = re.compile(r"^(\S+: )?WARNING: ")


@dataclass(frozen=True)
class CycleReport:
    """One cycle as the log, `probe` and the status page tell it."""

    started: float  # unix time
    duration: float  # seconds
    master: Stamp | None  # the first archive's master stamp
    master_note: str  # what became of the master reads (one per archive, named when there are several)
    verdicts: tuple[Verdict, ...]
    references: Mapping[str, Reference] = field(default_factory=lambda: MappingProxyType({}))  # per archive
    external: tuple[External, ...] = ()  # what came in through the door this cycle
    notes: tuple[str, ...] = ()  # master_note's parts, one per check's note

    @property
    def warnings(self) -> tuple[str, ...]:
        """The notes that are warnings asking an operator to act (no route to an address, a lock name never
        confirmed), `[TARGET: ]WARNING: ...`; a master note with a warning inside stays a master note."""
        return tuple(note for note in self.notes if WARNING.match(note))

    def all_failed(self, kind: TargetKind) -> bool:
        """Every probed mirror (or relay service) failed: more likely the prober's fault than theirs."""
        return policy.all_failed(self.verdicts, kind)

    def likely_cause(self, kind: TargetKind) -> str:
        """Why every verdict of `kind` failed at once, as the all-failed guard tells it."""
        return policy.likely_cause(self.verdicts, self.references, kind)


def report(observed: Observed, judged: Judged) -> CycleReport:
    return CycleReport(observed.started, observed.duration, judged.master, "; ".join(judged.notes), judged.verdicts,
                       judged.references, observed.external, judged.notes)


async def observe(config: Config, client: httpx.AsyncClient, concurrency: int = 200,
                  sources: Sequence[Source] = (), checks: Sequence[Check[Any]] = CHECKS) -> Observed:
    """Every target of every check, at most `concurrency` in flight; then what the outside sources hold."""
    started, clock = time.time(), time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    probing = Probing(client, config.settings.health.timeout, config.settings.health.source)

    async def bounded(check: Check[Any], target: Target) -> tuple[str, str, Observation]:
        async with gate:
            return check.name, target.key, await check.observe(target, probing)

    # Targets in each check's order, so reports read in configuration order whatever finished first.
    results: dict[str, dict[str, Observation]] = {check.name: {} for check in checks}
    jobs = [bounded(check, target) for check in checks for target in check.targets(config)]
    for name, key, observation in await asyncio.gather(*jobs):
        results[name][key] = observation
    external = tuple(seen for source in sources for seen in source.read())
    return Observed(started, time.monotonic() - clock,
                    MappingProxyType({name: MappingProxyType(found) for name, found in results.items()}), external)


async def run_cycle(config: Config, client: httpx.AsyncClient, concurrency: int = 200,
                    previous: HealthState | None = None, sources: Sequence[Source] = ()) -> CycleReport:
    """Observe (I/O), then read the observations against the references of `previous` cycles (pure)."""
    observed = await observe(config, client, concurrency, sources)
    known = previous.archives if previous is not None else {}
    return report(observed, policy.judge(observed, policy_settings(config), known, observed.started))
