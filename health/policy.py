"""The health policy, pure: (state, one cycle's observations, settings, now) -> the next state and what happened.

gdnsd's split: checks only observe (health/checks/), this module decides. It reads each check's observations into
verdicts (the push reference moves here, through health/reference.py), sets aside a kind whose every target failed
at once (the prober is the likely fault), lets outside observations in through the one door (health/external.py:
through fall/rise like a probe, or final), and applies fall/rise per target. No I/O and no logging: the caller
logs the records it returns, persists the state and builds the table.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from dnsbalance.health.checks import CHECKS
from dnsbalance.health.checks.base import Check, Judged
from dnsbalance.health.observations import External, Mode, Observed
from dnsbalance.health.reference import Reference
from dnsbalance.health.settings import PolicySettings
from dnsbalance.health.state import HealthState, MirrorHealth, step
from dnsbalance.health.verdict import TargetKind, Verdict


@dataclass(frozen=True)
class ProberSuspected:
    """Every target of one kind failed in the same cycle: their verdicts were set aside, their health kept."""

    kind: TargetKind
    cause: str  # the likely cause, in the words the log and `probe` use


@dataclass(frozen=True)
class TableKept:
    """Nothing was left to judge once the suspected verdicts were set aside: the table in service stays."""


@dataclass(frozen=True)
class ReferenceMoved:
    archive: str
    serial: str
    was: str | None  # the previous reference serial, None on first sight
    grace: float  # seconds mirrors on `was` keep serving


@dataclass(frozen=True)
class Transition:
    """A target went up or down (or was first judged down)."""

    key: str
    up: bool
    reason: str


@dataclass(frozen=True)
class UnknownTarget:
    """An outside observation named no mirror, relay or health key of the configuration: it was dropped."""

    observation: External


Record = ProberSuspected | TableKept | ReferenceMoved | Transition | UnknownTarget


@dataclass(frozen=True)
class Step:
    state: HealthState
    judged: Judged  # the checks' verdicts (before the guard), references and notes, for the log and status page
    records: tuple[Record, ...]

    @property
    def kept(self) -> bool:
        return any(isinstance(r, TableKept) for r in self.records)


def judge(observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference], now: float,
          checks: Sequence[Check[Any]] = CHECKS) -> Judged:
    """Every check's verdicts; a target two checks judge is usable only if both say so (the first failure
    is kept, in the first verdict's type)."""
    verdicts: dict[str, Verdict] = {}
    references: dict[str, Reference] = {}
    notes: list[str] = []
    learned: dict[str, str] = {}
    master = None
    for check in checks:
        judged = check.judge(observed, settings, previous, now)
        for verdict in judged.verdicts:
            verdicts[verdict.name] = worst(verdicts.get(verdict.name), verdict)
        references.update(judged.references)
        notes += judged.notes
        learned.update(judged.learned)
        master = master or judged.master
    return Judged(tuple(verdicts.values()), MappingProxyType(references), tuple(notes), master,
                  MappingProxyType(learned))


def worst(first: Verdict | None, second: Verdict) -> Verdict:
    if first is None:
        return second
    if first.ok and not second.ok:
        return dataclasses.replace(first, ok=False, reason=second.reason, cause=second.cause, syncing=False)
    return first


def all_failed(verdicts: Sequence[Verdict], kind: TargetKind) -> bool:
    """Every probed mirror (or relay service) failed: more likely the prober's fault than theirs."""
    judged = [v for v in verdicts if v.kind == kind and not v.unchecked]
    return bool(judged) and not any(v.ok for v in judged)


def likely_cause(verdicts: Sequence[Verdict], references: Mapping[str, Reference], kind: TargetKind) -> str:
    """Why every verdict of `kind` failed at once, as the all-failed guard tells it."""
    causes = {v.cause for v in verdicts if v.kind == kind and not v.ok}
    if kind is TargetKind.MIRROR and causes == {"stale"}:
        serials = sorted({r.master for r in references.values() if r.master})
        return (f"every mirror is behind the serial the master just published ({', '.join(serials) or '?'}): "
                "a push no mirror has finished, or a master ahead of its mirrors")
    if causes == {"not-trace"}:
        return "every mirror served something that is not a trace file: a wrong stamp path is likely"
    if causes <= {"unreachable", ""}:
        return "no mirror could be reached: the prober's network (or its resolver) is the likely fault"
    return "the prober is the likely fault (" + ", ".join(sorted(c or "unreachable" for c in causes)) + ")"


def next_state(state: HealthState, observations: Observed, settings: PolicySettings, now: float,
               checks: Sequence[Check[Any]] = CHECKS) -> Step:
    """The next health state. Judged targets step through fall/rise, unjudged ones keep their state, targets the
    configuration no longer has are dropped; archives take their new reference."""
    judged = judge(observations, settings, state.archives, now, checks)
    records: list[Record] = []
    verdicts = list(judged.verdicts)
    references: Mapping[str, Reference] = judged.references
    for kind in TargetKind:
        if all_failed(judged.verdicts, kind):
            records.append(ProberSuspected(kind, likely_cause(judged.verdicts, judged.references, kind)))
            verdicts = [v for v in verdicts if v.kind != kind]
            if kind is TargetKind.MIRROR:
                references = {}  # a reference a failed cycle computed is no better than its verdicts
    rules, final, unknown = _external(observations.external, settings)
    consensus = _only(rules, lambda e: e.mode is Mode.CONSENSUS)
    rules = _only(rules, lambda e: e.mode is not Mode.CONSENSUS)
    records += [UnknownTarget(e) for e in unknown]
    if judged.verdicts and not verdicts and not rules and not final and not consensus:
        return Step(state, judged, (*records, TableKept()))

    by_key = {v.name: v for v in verdicts}
    local = {v.name: v for v in judged.verdicts}  # before the guard: a consensus keeps this prober's details
    for key, said in consensus.items():
        by_key[key] = _consensus(local.get(key), key, said)
    for key, said in rules.items():
        by_key[key] = _through_rules(by_key.get(key), key, said)
    mirrors = {key: h for key, h in state.mirrors.items() if key in settings.known}
    for key, verdict in by_key.items():
        if key in settings.known and key not in final:
            limits = settings.of(key)
            mirrors[key] = step(state.mirrors.get(key), verdict, limits.fall, limits.rise, now)
    for key, said in final.items():
        mirrors[key] = _final(state.mirrors.get(key), by_key.get(key), said, now)
    names = {key: name for key, name in {**state.names, **judged.learned}.items() if key in settings.known}
    after = HealthState(MappingProxyType(mirrors), state.cycles + 1,
                        MappingProxyType({**state.archives, **references}), MappingProxyType(names))

    grace = {a.name: a.grace for a in settings.archives}
    for name, ref in references.items():
        prior = state.archives.get(name)
        if ref.serial and (prior is None or prior.serial != ref.serial):
            records.append(ReferenceMoved(name, ref.serial, prior.serial if prior else None, grace.get(name, 0.0)))
    for key, health in mirrors.items():
        was = state.mirrors.get(key)
        if (was is None and not health.up) or (was is not None and was.up != health.up):
            records.append(Transition(key, health.up, health.reason))
    return Step(after, judged, tuple(records))


def _external(observations: Sequence[External], settings: PolicySettings
              ) -> tuple[dict[str, list[External]], dict[str, list[External]], list[External]]:
    """Outside observations per health key, by mode; a mirror or relay name stands for all its keys."""
    rules: dict[str, list[External]] = {}
    final: dict[str, list[External]] = {}
    unknown = []
    for seen in observations:
        keys = [seen.target] if seen.target in settings.known else \
            [key for key, owner in settings.known.items() if owner == seen.target]
        if not keys:
            unknown.append(seen)
        for key in keys:
            (final if seen.mode is Mode.FINAL else rules).setdefault(key, []).append(seen)
    return rules, final, unknown


def _only(by_key: dict[str, list[External]], keep: Callable[[External], bool]) -> dict[str, list[External]]:
    kept = {key: [e for e in said if keep(e)] for key, said in by_key.items()}
    return {key: said for key, said in kept.items() if said}


def _deciding(said: list[External]) -> External:
    """Of several observations of one target, the first that says down (down wins), else the first."""
    return next((e for e in said if not e.up), said[0])


def _through_rules(verdict: Verdict | None, key: str, said: list[External]) -> Verdict:
    """An outside observation counts as one more probe: the target is up this cycle only if all agree."""
    deciding = _deciding(said)
    if verdict is None:
        return Verdict(key, deciding.up, deciding.describe(), cause="external")
    if deciding.up or not verdict.ok:
        return verdict
    return dataclasses.replace(verdict, ok=False, reason=deciding.describe(), cause="external", syncing=False)


def _consensus(verdict: Verdict | None, key: str, said: list[External]) -> Verdict:
    """The vantage points' verdict replaces this prober's for the cycle; its other details (lag, URL) stay."""
    deciding = _deciding(said)
    if verdict is None:
        return Verdict(key, deciding.up, deciding.describe(), cause="cluster")
    if verdict.ok == deciding.up:
        return verdict
    return dataclasses.replace(verdict, ok=deciding.up, reason=f"{deciding.describe()} (here: {verdict.reason})",
                               cause="cluster", syncing=False)


def _final(previous: MirrorHealth | None, verdict: Verdict | None, said: list[External], now: float) -> MirrorHealth:
    """A final observation is the state itself, whatever fall/rise and the probes say."""
    deciding = _deciding(said)
    since = previous.since if previous is not None and previous.up == deciding.up else now
    syncing = deciding.up and verdict is not None and verdict.ok and verdict.syncing
    return MirrorHealth(deciding.up, 0, deciding.describe(), since, now,
                        verdict.lag if verdict is not None else None, syncing)
