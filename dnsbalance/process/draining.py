"""The running server's side of operators' drains (dnsbalance/drains.py): the supervisor asks every half second
whether the drains file changed or a drain ran out, and if so builds a new table generation (answerers are forked
per generation, so every worker answers without the mirror within about a second).

Why a watched file rather than a signal: `dnsbalance drain` may run as another user than the server (root, an
operator in the server's group) who can write the state folder but not signal the server; the cluster's
follower writes the same file; a drain written while the server is stopped is in force from its start; and
expiry needs a clock anyway. A stat() every half second costs nothing.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from dnsbalance import drains as operator_drains
from dnsbalance.drains import DrainWatch
from dnsbalance.health import events as health_events
from dnsbalance.serving.balancer import Balancer

log = logging.getLogger(__name__)


class DrainFollower:
    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.watch = DrainWatch(balancer.state.drains)
        self.reported: str | None = None
        # drains that ran out and were logged: once each, even when the file cannot be rewritten without them
        self.ended: set[tuple[str, float]] = set()

    def due(self, now: float) -> bool:
        """Whether the drains in force differ from the table's (a changed file, a drain that ran out)."""
        if self.watch.path != self.balancer.state.drains:  # a reload moved the state folder
            self.watch = DrainWatch(self.balancer.state.drains)
        self.watch.poll()
        if self.watch.problem != self.reported:
            self.reported = self.watch.problem
            if self.watch.problem is not None:
                log.warning("cannot read the drains file %s: %s; the drains in force stay", self.watch.path,
                            self.watch.problem)
        wanted = operator_drains.active(self.watch.drains, now)
        return dict(wanted) != dict(self.balancer.drains) or bool(self._ran_out(now))

    def _ran_out(self, now: float) -> dict[str, operator_drains.Drain]:
        return {name: d for name, d in self.watch.drains.items()
                if not d.active(now) and (name, d.since) not in self.ended}

    def apply(self) -> bool:
        """On a build thread, under the supervisor's build lock: put the drains in force; drains that ran out
        are taken out of the file and logged as undrains. True when a new generation was built."""
        now = time.time()
        every = dict(self.watch.drains)
        expired = self._ran_out(now)
        if expired:
            self.ended |= {(name, d.since) for name, d in expired.items()}
            self._expire(expired, self.watch.path)
        wanted = operator_drains.active(every, now)
        before = set(self.balancer.drains)
        rebuilt = self.balancer.set_drains(wanted)
        for name in sorted(set(wanted) - before):
            log.warning("%s is DRAINED: %s", name, wanted[name].describe())
        for name in sorted(before - set(wanted)):
            log.warning("%s is no longer drained%s", name, " (its drain ran out)" if name in expired else "")
        if rebuilt:
            log.info("drains in force: %s (table generation %d)", ", ".join(sorted(wanted)) or "none",
                     self.balancer.generation)
        return rebuilt

    def _expire(self, expired: dict[str, operator_drains.Drain], path: Path) -> None:
        def prune(found: dict[str, operator_drains.Drain]) -> dict[str, operator_drains.Drain]:
            # only the very drains that ran out: one renewed meanwhile by `dnsbalance drain` stays
            return {name: d for name, d in found.items() if expired.get(name) != d}
        try:
            operator_drains.change(path, prune)
        except (OSError, operator_drains.BadDrains) as exc:
            log.warning("cannot take expired drains out of %s: %s (they are not in force all the same)", path, exc)
        for name, drain in sorted(expired.items()):
            self.balancer.note(health_events.Event(
                drain.until or time.time(), name, True, f"drain ran out (drained by {drain.by} since "
                f"{operator_drains.clock(drain.since)}{': ' + drain.reason if drain.reason else ''})",
                health_events.Kind.UNDRAIN, "expiry"))
