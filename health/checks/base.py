"""The check interface, after gdnsd's monitor API: a check declares its targets from the configuration, observes
one target at a time (I/O, under the cycle's deadline), and reads its own observations back into verdicts (pure).
It never decides a state: fall/rise, the all-failed guard and outside observations are the policy's."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, TypeVar

import httpx

from dnsbalance.configuration.model import Config
from dnsbalance.health.observations import Observation, Observed
from dnsbalance.health.reference import Reference
from dnsbalance.health.settings import PolicySettings
from dnsbalance.health.stamp import Stamp
from dnsbalance.health.verdict import Verdict


@dataclass(frozen=True)
class Target:
    """Something one check observes; its key names the observation (unique within the check)."""

    key: str


@dataclass(frozen=True)
class Probing:
    """What a check's I/O may use: the cycle's one HTTP client and the per-probe deadline."""

    client: httpx.AsyncClient
    timeout: float
    source: str | None = None  # health.source: the local address relay probes bind to (the client has it too)


@dataclass(frozen=True)
class Judged:
    """What the checks read out of one cycle's observations, before the policy decides anything."""

    verdicts: tuple[Verdict, ...] = ()
    references: Mapping[str, Reference] = field(default_factory=lambda: MappingProxyType({}))  # per archive
    notes: tuple[str, ...] = ()  # what became of the master reads, for the log and `probe`
    master: Stamp | None = None  # the first archive's master stamp
    # what mirrors said about themselves, by health key: ftpsync's MIRRORNAME from their _hierarchy (kept in
    # health.json, so `check` and the status page know which lock names were ever confirmed)
    learned: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


NOTHING = Judged()
T = TypeVar("T", bound=Target)


class Check(Protocol[T]):
    name: str  # the observations' folder in Observed.results

    def targets(self, config: Config) -> Sequence[T]:
        """Every target of this kind the configuration has, in the order they are reported."""

    async def observe(self, target: T, probing: Probing) -> Observation:
        """One target's raw result; never raises (a failure is an observation)."""

    def judge(self, observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference],
              now: float) -> Judged:
        """Verdicts from this check's observations (pure); a check whose observations another check reads (the
        master's stamp, the ftpsync lock) returns NOTHING."""
