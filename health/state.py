"""Health over time, pure: fall/rise hysteresis from one cycle's verdicts, and its on-disk form."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType

from dnsbalance.statefiles import write_atomically
from dnsbalance.health.reference import Reference
from dnsbalance.health.verdict import Verdict
from dnsbalance.health.view import HealthView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MirrorHealth:
    up: bool
    streak: int = 0  # consecutive verdicts against `up`: a change needs `fall` (or `rise`) of them
    reason: str = ""
    since: float = 0.0  # when `up` last changed, unix time
    checked: float = 0.0
    lag: float | None = None
    syncing: bool = False  # up, and showing ftpsync's lock at the last probe


@dataclass(frozen=True)
class HealthState:
    mirrors: Mapping[str, MirrorHealth] = field(default_factory=lambda: MappingProxyType({}))
    cycles: int = 0
    archives: Mapping[str, Reference] = field(default_factory=lambda: MappingProxyType({}))  # per archive name
    # ftpsync's MIRRORNAME as each (mirror, archive) last published it: its lock name, confirmed
    names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def view(self) -> HealthView:
        return HealthView(MappingProxyType({name: h.up for name, h in self.mirrors.items()}),
                          frozenset(name for name, h in self.mirrors.items() if h.up and h.syncing))


def step(previous: MirrorHealth | None, verdict: Verdict, fall: int, rise: int, now: float) -> MirrorHealth:
    syncing = verdict.syncing
    if previous is None:  # first judgement of this mirror: take it as it is
        return MirrorHealth(verdict.ok, 0, verdict.reason, now, now, verdict.lag, syncing)
    if verdict.ok == previous.up:
        return MirrorHealth(previous.up, 0, verdict.reason, previous.since, now, verdict.lag, syncing)
    streak = previous.streak + 1
    if streak >= (fall if previous.up else rise):
        return MirrorHealth(verdict.ok, 0, verdict.reason, now, now, verdict.lag, syncing)
    kept = "up" if previous.up else "down"
    return MirrorHealth(previous.up, streak, f"{verdict.reason} ({streak} of {fall if previous.up else rise} "
                        f"before {'down' if previous.up else 'up'}; still {kept})", previous.since, now, verdict.lag,
                        syncing)


def advance(state: HealthState, verdicts: Iterable[Verdict], fall: int, rise: int, now: float,
            known: Iterable[str], references: Mapping[str, Reference] | None = None) -> HealthState:
    """The next state: judged mirrors step, unjudged ones keep their state, unknown names are dropped;
    archives take their new reference (those not judged keep theirs)."""
    names = set(known)
    mirrors = {name: h for name, h in state.mirrors.items() if name in names}
    for verdict in verdicts:
        mirrors[verdict.name] = step(state.mirrors.get(verdict.name), verdict, fall, rise, now)
    archives = {**state.archives, **(references or {})}
    return HealthState(MappingProxyType(mirrors), state.cycles + 1, MappingProxyType(archives), state.names)


def save(state: HealthState, path: Path) -> None:
    data = {"cycles": state.cycles, "mirrors": {name: asdict(h) for name, h in sorted(state.mirrors.items())},
            "archives": {name: asdict(r) for name, r in sorted(state.archives.items())},
            "names": dict(sorted(state.names.items()))}
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
        archives = {str(name): Reference(**fields) for name, fields in data.get("archives", {}).items()}
        names = {str(key): str(name) for key, name in data.get("names", {}).items()}
        return HealthState(MappingProxyType(mirrors), int(data.get("cycles", 0)), MappingProxyType(archives),
                           MappingProxyType(names))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable health state %s (every mirror counts as usable): %s", path, exc)
        return HealthState()
