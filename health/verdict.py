"""One mirror's verdict for one cycle, pure: alive (2xx in time) and fresh (stamp matches the master)."""
from __future__ import annotations

from dataclasses import dataclass

from health.fetch import Fetched
from health.stamp import Stamp, freshness, parse_stamp


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    reason: str
    url: str | None = None
    status: int | None = None
    latency: float | None = None
    stamp: Stamp | None = None
    lag: float | None = None
    kind: str = "mirror"  # or "relay": the all-failed rule is applied to each kind on its own


def judge(name: str, fetched: Fetched, master: Stamp | None, max_lag: float) -> Verdict:
    """`master` None: the master could not be read this cycle, so only liveness counts."""
    if not fetched.ok:
        return Verdict(name, False, fetched.error or f"HTTP {fetched.status}", fetched.url, fetched.status,
                       fetched.latency)
    stamp = parse_stamp(fetched.body, fetched.last_modified)
    if master is None:
        return Verdict(name, True, "alive (freshness not checked: master unreadable)", fetched.url, fetched.status,
                       fetched.latency, stamp)
    fresh = freshness(stamp, master, max_lag)
    return Verdict(name, fresh.fresh, fresh.reason, fetched.url, fetched.status, fetched.latency, stamp, fresh.lag)
