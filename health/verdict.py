"""One mirror's (or relay service's) verdict for one cycle: usable or not, and why."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from health.stamp import Stamp


class TargetKind(StrEnum):
    """What a verdict judges; prints and compares as the word."""

    MIRROR = "mirror"
    RELAY = "relay"


@dataclass(frozen=True)
class Verdict:
    name: str  # the health key: a mirror (`jaist`, or `jaist/debian-security`) or a relay service
    ok: bool
    reason: str
    url: str | None = None
    status: int | None = None
    latency: float | None = None
    stamp: Stamp | None = None
    lag: float | None = None
    kind: TargetKind = TargetKind.MIRROR  # the all-failed rule is applied to each kind on its own
    syncing: bool = False  # ok, but showing ftpsync's lock: avoided while its region can do without it
    archive: str | None = None
    cause: str = ""  # what kind of failure, for the all-failed message: unreachable, stale, not-trace, http
