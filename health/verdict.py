"""One target's judgement for one cycle: usable or not, and why. The policy needs only the base fields; each
kind of check adds what it saw (a stamp verdict its URL, HTTP status and stamp)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dnsbalance.health.stamp import Stamp


class TargetKind(StrEnum):
    """What a verdict judges; prints and compares as the word."""

    MIRROR = "mirror"
    RELAY = "relay"


@dataclass(frozen=True)
class Verdict:
    name: str  # the health key: a mirror (`jaist`, or `jaist/debian-security`) or a relay service
    ok: bool
    reason: str
    latency: float | None = None
    kind: TargetKind = TargetKind.MIRROR  # the all-failed rule is applied to each kind on its own
    cause: str = ""  # what kind of failure, for the all-failed message: unreachable, stale, not-trace, http
    syncing: bool = False  # ok, but showing ftpsync's lock: avoided while its region can do without it
    lag: float | None = None  # seconds behind the master, kept in the state for the status page
    # nothing was observed (no route from the prober): judged on other verdicts, and left out of the all-failed
    # rule, which asks whether the prober saw every target fail
    unchecked: bool = False


@dataclass(frozen=True)
class StampVerdict(Verdict):
    """A (mirror, archive) judged by its stamp file against the archive's reference."""

    url: str | None = None
    status: int | None = None
    stamp: Stamp | None = None
    archive: str | None = None


@dataclass(frozen=True)
class RelayVerdict(Verdict):
    """A relay service, judged over every address it is served at."""

    kind: TargetKind = TargetKind.RELAY
    addresses: int = 0  # how many addresses were asked
