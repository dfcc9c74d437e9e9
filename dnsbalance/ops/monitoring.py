"""One verdict for a monitoring system (Nagios, Icinga, Sensu, a cron job): the monitoring-plugin exit codes
and a one-line summary, made from a table and the health it was built with. Pure: `dnsbalance probe` gives it
a table built from the cycle it just ran, the server gives it the table in service (`/status.json`'s
`assessment`, which `dnsbalance status` prints), so both judge by the same rules:

  CRITICAL (2)  clients lose: a name some table lists has no usable entry there because of the health
                checks (its clients go to a wider table, or the default table fails open), or every probed
                mirror (or relay service) failed at once (the prober's side, or an outage: either needs a
                person now)
  WARNING (1)   a probed mirror or relay service is failing (down or stale), while every table still has a
                usable entry for each of its names
  OK (0)        nothing failing. Entries an operator drained (priority 10000, `state: down`) are no failure
  UNKNOWN (3)   no verdict: the configuration cannot be read, no server is running, its status page cannot
                be read, or (the server) no health cycle has judged anything yet
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from dnsbalance.configuration.model import Config
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.pool import Judgement, Why

SHOWN = 5  # names listed in the one-line summary before "and N more"
HEALTH_LOSSES = frozenset({Why.DOWN, Why.PARTIAL, Why.ADDRESS_DOWN})  # not the operator's drains
PROBED = frozenset({Judgement.UP, Judgement.SYNCING, Judgement.DOWN, Judgement.PENDING})


class Code(IntEnum):
    """Monitoring-plugin exit codes (Nagios plugin guidelines; Icinga, Sensu and Zabbix read them too)."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Failing:
    target: str  # the mirror or relay
    kind: str  # "mirror" or "relay"
    keys: tuple[str, ...]  # its failing health keys (`jaist`, `jaist/debian-security`, `tokyo1/stun`)
    reason: str  # the first failing key's reason


@dataclass(frozen=True)
class Assessment:
    code: Code
    summary: str
    mirrors: int  # probed mirrors
    relays: int  # probed relays
    failing: tuple[Failing, ...] = ()
    stranded: tuple[str, ...] = ()  # "country JP deb A": a table's name left with no usable entry by health
    prober: tuple[str, ...] = ()  # "every mirror failed: <likely cause>"

    @property
    def line(self) -> str:
        """The plugin's first line, with performance data after the bar."""
        if self.code is Code.UNKNOWN:
            return f"DNSBALANCE UNKNOWN - {self.summary}"
        failing_mirrors = sum(f.kind == "mirror" for f in self.failing)
        return (f"DNSBALANCE {self.code.name} - {self.summary} | mirrors={self.mirrors} "
                f"failing_mirrors={failing_mirrors} relays={self.relays} "
                f"failing_relays={len(self.failing) - failing_mirrors} stranded_names={len(self.stranded)}")

    def details(self) -> list[str]:
        """The long text under the first line: every failing target and stranded name."""
        lines = [f"{note}" for note in self.prober]
        lines += [f"failing {f.kind} {f.target}: {f.reason}" for f in self.failing]
        lines += [f"no usable entry: {name}" for name in self.stranded]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {"status": self.code.name, "code": int(self.code), "summary": self.summary, "line": self.line,
                "mirrors": self.mirrors, "relays": self.relays,
                "failing": [{"target": f.target, "kind": f.kind, "keys": list(f.keys), "reason": f.reason}
                            for f in self.failing],
                "stranded": list(self.stranded), "prober": list(self.prober)}


def unknown(summary: str) -> Assessment:
    return Assessment(Code.UNKNOWN, summary, 0, 0)


def owner(key: str) -> str:
    """The mirror or relay a health key judges: `jaist/debian`, `jaist@192.0.2.1`, `jaist+arm64` -> jaist."""
    return re.split(r"[/@+]", key, maxsplit=1)[0]


def assess(config: Config, table: ActiveTable, reasons: Mapping[str, str], prober: Sequence[str] = (),
           judged_yet: bool = True) -> Assessment:
    """The verdict on `table`. `reasons`: each health key's reason; `prober`: a note per kind of target
    whose every probe failed in the last cycle; `judged_yet`: False before any health cycle finished."""
    probed: dict[str, set[str]] = {}
    down: dict[str, list[str]] = {}
    for key, judgement in sorted(table.judged.items()):
        if judgement in PROBED:
            probed.setdefault(owner(key), set()).add(key)
        if judgement is Judgement.DOWN:
            down.setdefault(owner(key), []).append(key)
    mirrors = sum(name in config.mirrors for name in probed)
    relays = len(probed) - mirrors
    failing = tuple(Failing(name, "mirror" if name in config.mirrors else "relay", tuple(keys),
                            reasons.get(keys[0], "") or "down") for name, keys in down.items())
    stranded = tuple(_stranded(table))
    if not judged_yet and probed:
        return Assessment(Code.UNKNOWN, f"no health cycle finished yet ({_count(mirrors, 'mirror')} to probe)",
                          mirrors, relays)
    parts = list(prober)
    if stranded:
        parts.append(f"{_count(len(stranded), 'name')} with no usable entry in a table: {_listed(stranded)}")
    for kind, total in (("mirror", mirrors), ("relay", relays)):
        names = [f.target for f in failing if f.kind == kind]
        if names:
            parts.append(f"{len(names)} of {_count(total, kind)} failing: {_listed(names)}")
    if prober or stranded:
        code = Code.CRITICAL
    elif failing:
        code = Code.WARNING
    else:
        code = Code.OK
        usable = [_count(mirrors, "mirror")] + ([_count(relays, "relay")] if relays else [])
        parts.append(f"{' and '.join(usable)} probed, none failing" if probed else "nothing probed (no url:)")
    return Assessment(code, "; ".join(parts), mirrors, relays, failing, stranded, tuple(prober))


def _stranded(table: ActiveTable) -> list[str]:
    """Every (region, name, type) whose entries are all unusable, at least one of them by health."""
    found = []
    for label, tier in table.labelled_tiers():
        for (name, rtype) in sorted(tier.fail_open, key=lambda k: (k[0], k[1].name)):
            if any(left.why in HEALTH_LOSSES for left in tier.left_out.get((name, rtype), ())):
                opened = " (failing open)" if tier is table.default else ""
                found.append(f"{label} {name} {rtype.name}{opened}")
    return found


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
