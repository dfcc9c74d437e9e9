"""Health over time, pure: fall/rise hysteresis from one cycle's verdicts, and its on-disk form."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

from dnsbalance.statefiles import write_atomically
from health.verdict import Verdict
from health.view import HealthView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MirrorHealth:
    up: bool
    streak: int = 0  # consecutive verdicts against `up`: a change needs `fall` (or `rise`) of them
    reason: str = ""
    since: float = 0.0  # when `up` last changed, unix time
    checked: float = 0.0
    lag: float | None = None


@dataclass(frozen=True)
class HealthState:
    mirrors: Mapping[str, MirrorHealth] = field(default_factory=lambda: MappingProxyType({}))
    cycles: int = 0

    def view(self) -> HealthView:
        return HealthView(MappingProxyType({name: h.up for name, h in self.mirrors.items()}))


def step(previous: MirrorHealth | None, verdict: Verdict, fall: int, rise: int, now: float) -> MirrorHealth:
    if previous is None:  # first judgement of this mirror: take it as it is
        return MirrorHealth(verdict.ok, 0, verdict.reason, now, now, verdict.lag)
    if verdict.ok == previous.up:
        return MirrorHealth(previous.up, 0, verdict.reason, previous.since, now, verdict.lag)
    streak = previous.streak + 1
    if streak >= (fall if previous.up else rise):
        return MirrorHealth(verdict.ok, 0, verdict.reason, now, now, verdict.lag)
    kept = "up" if previous.up else "down"
    return MirrorHealth(previous.up, streak, f"{verdict.reason} ({streak} of {fall if previous.up else rise} "
                        f"before {'down' if previous.up else 'up'}; still {kept})", previous.since, now, verdict.lag)


def advance(state: HealthState, verdicts: Iterable[Verdict], fall: int, rise: int, now: float,
            known: Iterable[str]) -> HealthState:
    """The next state: judged mirrors step, unjudged ones keep their state, unknown names are dropped."""
    names = set(known)
    mirrors = {name: h for name, h in state.mirrors.items() if name in names}
    for verdict in verdicts:
        mirrors[verdict.name] = step(state.mirrors.get(verdict.name), verdict, fall, rise, now)
    return HealthState(MappingProxyType(mirrors), state.cycles + 1)


def save(state: HealthState, path: Path) -> None:
    data = {"cycles": state.cycles, "mirrors": {name: asdict(h) for name, h in sorted(state.mirrors.items())}}
    write_atomically(path, json.dumps(data, indent=1) + "\n")


def load(path: Path) -> HealthState:
    """The persisted state, or an empty one (all usable) when there is none or it cannot be read."""
    if not path.exists():
        return HealthState()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("mirrors"), dict):
            raise TypeError("expected {\"mirrors\": {...}, \"cycles\": N}")
        mirrors = {str(name): MirrorHealth(**fields) for name, fields in data["mirrors"].items()}
        return HealthState(MappingProxyType(mirrors), int(data.get("cycles", 0)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable health state %s (every mirror counts as usable): %s", path, exc)
        return HealthState()
