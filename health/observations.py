"""What one cycle saw, before anything is decided: every check's raw observations, filed under the check's name
and the target's name (never by position), and the observations that came in from elsewhere (the external door).

Observations are values: each kind of check has its own frozen dataclass (health/checks/), all of them
`Observation`s; the policy (health/policy.py) is the only reader that turns them into health.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


@dataclass(frozen=True)
class Observation:
    """The base of every check's observation: which target it is about."""

    target: str  # the target's name within its check (a health key, an archive name, key@address, ...)


class Mode(StrEnum):
    """How an outside observation counts, as gdnsd's extfile has it (`monitor` and `direct` there)."""

    RULES = "rules"  # one more probe result: it goes through fall/rise, and a target is up only if all agree
    FINAL = "final"  # the state itself: it overrides the probes and fall/rise while it is given
    # the verdict of several vantage points (dnsbalance/cluster/): it replaces this prober's own verdict for the
    # cycle, up or down, and goes through fall/rise like one
    CONSENSUS = "consensus"


@dataclass(frozen=True)
class External:
    """An observation from outside the prober: an operator's or a script's file, later other instances."""

    target: str  # a health key (`jaist`, `jaist/debian-security`, `tokyo1/stun`) or a mirror or relay name
    up: bool
    mode: Mode = Mode.RULES
    source: str = ""  # where it came from, for logs and reasons: `state/external-health:3`
    note: str = ""  # the source's own words, if any

    def describe(self) -> str:
        said = f"{'up' if self.up else 'down'}{' (final)' if self.mode is Mode.FINAL else ''} " \
               f"{'by' if self.mode is Mode.CONSENSUS else 'in'} {self.source}"
        return f"{said}: {self.note}" if self.note else said


@dataclass(frozen=True)
class Observed:
    """One cycle's raw observations."""

    started: float  # unix time the cycle started
    duration: float  # seconds it took
    results: Mapping[str, Mapping[str, Observation]] = field(
        default_factory=lambda: MappingProxyType({}))  # check name -> target name -> observation
    external: tuple[External, ...] = ()

    def of(self, check: str) -> Mapping[str, Observation]:
        """One check's observations by target name (empty when the check did not run)."""
        return self.results.get(check, MappingProxyType({}))
