"""What the balancer is doing, as the typed JSON document of ops/status_document.py (pure): the status page,
`/status.json` and the metrics are all made from it. Whether an entry is usable and why not is the table
builder's word (its judgements and left-out records), read here, never worked out again.

Two sizes, so that a big table (250 countries x 50 names) never makes one huge document: `summary` (mirrors,
relays, one line per region, regions with problems first) and `region_details` (every pool of the regions
asked for, with configured, delivered and observed shares and the entries it lost).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # read, never made here
    from dnsbalance.compiler.signatures import ZoneSignatures
from dnsbalance.answer import native
from dnsbalance.configuration.model import Config, Level, Mirror, archives_of, fallback_archive, health_key, mirror_key
from dnsbalance.drains import NONE, Drain, Drains
from dnsbalance.health.cycle import CycleReport
from dnsbalance.health.events import OPERATOR_KINDS, Event, Kind
from dnsbalance.health.state import HealthState
from dnsbalance.health.verdict import StampVerdict, TargetKind, Verdict
from dnsbalance.health.view import Status
from dnsbalance.ops.dnssec_section import dnssec_state
from dnsbalance.ops.history import drained_intervals, history, overlay
from dnsbalance.ops.monitoring import Assessment, assess
from dnsbalance.ops.status_document import (
    ArchiveRow,
    DrainRow,
    EntryRow,
    HealthFields,
    LostRow,
    MirrorRow,
    OperationRow,
    PoolRow,
    RegionDetail,
    RegionLine,
    RelayRow,
    ServedInputs,
    Span,
    Summary,
)
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import ActiveTable, PoolLabel
from dnsbalance.ranking.build import fail_open_names, target_key
from dnsbalance.ranking.pool import Judgement, LeftOut, Why
from dnsbalance.stats.counters import RECENT_WINDOW, Totals

OPERATIONS_SHOWN = 12  # the operators' latest actions in the summary
HISTORY = 6 * 3600  # seconds of up/down history drawn per mirror, unless a view asks for more (ops/history.py)
PAGE_SIZE = 50  # regions per page of `/status.json?page=N`
# How bad a state is, worst first: the page sorts mirrors by it.
SEVERITY = ("down", "stale", "operator down", "drained", "pending", "syncing", "health off", "not probed",
            "operator up", "up")


@dataclass(frozen=True)
class StatusInputs:
    """Everything the status is made from, read once (by the web layer, off the event loop): the serving
    snapshot's configuration and table, health, the last cycle, counters summed over every process's file,
    and the health event log."""

    config: Config
    table: ActiveTable
    health: HealthState
    cycle: CycleReport | None
    totals: Totals
    built_at: float
    now: float
    changed: Mapping[PoolLabel, float] = field(default_factory=dict)  # when each pool last changed
    events: Sequence[Event] = ()
    reloads: Mapping[str, int] = field(default_factory=dict)  # "applied"/"refused" -> count
    inputs: ServedInputs = field(default_factory=lambda: ServedInputs())  # GeoIP in use; files on disk served?
    signing: ZoneSignatures | None = None  # DNSSEC: the table's signatures (tag, window, made); None: unsigned
    # operators' drains in force (dnsbalance/drains.py), by mirror or relay name
    drains: Drains = field(default_factory=lambda: NONE)
    history_seconds: float = HISTORY  # how far back the strips go (the page's 6 h / 24 h / 7 d views)
    key_source: str | None = None  # DNSSEC: "cluster" or "local" (Balancer.key_source)

    @cached_property
    def events_by_key(self) -> dict[str, list[Event]]:
        """Health events by key; operators' drains and undrains by mirror or relay name."""
        found: dict[str, list[Event]] = {}
        for event in self.events:
            if event.kind in (Kind.HEALTH, Kind.DRAIN, Kind.UNDRAIN):
                found.setdefault(event.key, []).append(event)
        return found

    def drain(self, key: str) -> Drain | None:
        """The operator's drain of the mirror or relay a health key belongs to."""
        return self.drains.get(key.partition("/")[0])

    @cached_property
    def verdicts(self) -> dict[str, Verdict]:
        """The last cycle's verdicts, by health key."""
        return {v.name: v for v in self.cycle.verdicts} if self.cycle else {}

    def state(self, key: str) -> str:
        """One word for a (mirror, archive) or relay service, as an operator reads it (SEVERITY orders
        them): the table builder's judgement, a verdict that is down told apart as stale or down."""
        judged = self.table.judged.get(key, Judgement.PENDING)
        if judged is not Judgement.DOWN:
            return judged.value
        verdict = self.verdicts.get(key)
        health = self.health.mirrors.get(key)
        stale = verdict.cause == "stale" if verdict is not None else health is not None and \
            health.reason.startswith("stale")
        return "stale" if stale else "down"

    def usable(self, key: str) -> bool:
        """Up, syncing or pending: not down by the health checks or the operator."""
        return self.table.judged.get(key, Judgement.PENDING).status is not Status.DOWN

    def history(self, key: str) -> list[Span]:
        """The key's health spans, with the stretches its mirror or relay was drained drawn as drained."""
        start = self.now - self.history_seconds
        target = key.partition("/")[0]
        spans = history(self.events_by_key.get(key, ()), key, start, self.now)
        drained = drained_intervals(self.events_by_key.get(target, ()), target, self.drains.get(target), start,
                                    self.now)
        return overlay(spans, drained, "drained") if drained else spans

    def since(self, key: str) -> float | None:
        """When the key's present state began: health's own word, or earlier when the event log says the
        state held before (health.json lost or reset, a restart that judged it anew)."""
        judged = self.health.mirrors.get(key)
        if judged is None:
            return None
        since = judged.since
        for event in reversed(self.events_by_key.get(key, ())):
            if event.kind != Kind.HEALTH:
                continue
            if event.up != judged.up:
                break
            since = min(since, event.time)
        return since


UNJUDGED = {  # the reason shown for a key with no verdict, by shown state
    "operator down": "state: down in mirrors.yaml", "operator up": "state: up in mirrors.yaml",
    "health off": "health checks are off: counts as usable", "not probed": "no url: not probed, counts as usable",
}


def _health(inputs: StatusInputs, key: str, state: str = "pending") -> HealthFields:
    """The key's health, as its rows show it; a drained key tells its drain (who, why, since when) instead of a
    health reason that would read as if all were well."""
    mirror = inputs.health.mirrors.get(key)
    drain = inputs.drain(key) if state == "drained" else None
    if drain is not None:
        return HealthFields(up=mirror.up if mirror else True, reason=drain.describe(),
                            lag=mirror.lag if mirror else None, since=drain.since,
                            checked=mirror.checked if mirror else None)
    if mirror is None:
        return HealthFields(up=True, reason=UNJUDGED.get(state, "pending: not judged yet"), lag=None, since=None,
                            checked=None)
    return HealthFields(up=mirror.up, reason=mirror.reason, lag=mirror.lag, since=inputs.since(key),
                        checked=mirror.checked)


def _stamp(verdict: Verdict | None) -> str | None:
    """The stamp a mirror showed, when a stamp check judged it (an outside verdict has none)."""
    return verdict.stamp.describe() if isinstance(verdict, StampVerdict) and verdict.stamp else None


def _archives(inputs: StatusInputs, mirror: Mirror) -> list[ArchiveRow]:
    """Health per archive the mirror carries: up, syncing, down or pending, and why."""
    archives = archives_of(inputs.config.settings)
    fallback = fallback_archive(archives)
    rows = []
    for archive in archives:
        url = mirror.url_for(archive, fallback)
        if not url:
            continue
        key = mirror_key(mirror.name, archive)
        judged = inputs.verdicts.get(key)
        ref = inputs.health.archives.get(archive.name)
        state = inputs.state(key)
        rows.append(ArchiveRow(archive=archive.name, key=key, url=url,
                               status=inputs.table.judged.get(key, Judgement.PENDING).status.value, state=state,
                               **_health(inputs, key, state),
                               latency=judged.latency if judged else None,
                               stamp=_stamp(judged),
                               reference=ref.serial if ref else None, history=inputs.history(key)))
    return rows


def selects(config: Config, label: str) -> str:
    """Which clients a table serves, as the status page and `explain` say it."""
    level, _, code = label.partition(" ")
    if level == Level.NETWORK.value and code in config.networks:
        return "clients inside " + ", ".join(str(n) for n in config.networks[code].networks)
    if level == Level.ASN.value:
        return f"clients in {code} (ASN database {config.settings.geoip.asn_database})"
    if level == Level.COUNTRY.value:
        return f"clients GeoIP places in country {code}"
    if level == Level.CONTINENT.value:
        return f"clients GeoIP places in continent {code}"
    return "every other client"


def natural(name: str) -> list[Any]:
    """m2 before m10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _mirrors(inputs: StatusInputs) -> list[MirrorRow]:
    rows = []
    for name, mirror in sorted(inputs.config.mirrors.items()):
        judged = inputs.verdicts.get(name)
        archives = _archives(inputs, mirror)
        worst = min(archives, key=lambda a: SEVERITY.index(a["state"]), default=None)
        state = worst["state"] if worst else inputs.state(name)
        # the mirror's own line tells its worst archive's story (the only one, usually)
        told = worst if worst is not None else _health(inputs, name, state)
        latency = worst["latency"] if worst is not None else None
        rows.append(MirrorRow(
            name=name, addresses=[*mirror.ipv4, *mirror.ipv6], url=mirror.url,
            admin_state=mirror.state.value, usable=inputs.usable(name), state=state,
            up=told["up"], reason=told["reason"], since=told["since"], checked=told["checked"], lag=told["lag"],
            last_status=judged.status if isinstance(judged, StampVerdict) else None,
            last_latency=latency if latency is not None else (judged.latency if judged else None),
            last_error=None if judged is None or judged.ok or state == "drained" else judged.reason,
            drain=_drain_row(inputs.drains.get(name)),
            stamp=_stamp(judged),
            history=worst["history"] if worst is not None else inputs.history(name),
            archives=archives,
        ))
    rows.sort(key=lambda m: (SEVERITY.index(m["state"]), natural(m["name"])))  # what needs action first
    return rows


def _relays(inputs: StatusInputs) -> list[RelayRow]:
    rows = []
    for name, relay in sorted(inputs.config.relays.items()):
        for service in relay.services():
            key = health_key(name, service)
            judged = inputs.verdicts.get(key)
            state = inputs.state(key)
            rows.append(RelayRow(
                name=name, service=service, port=relay.port(service),
                addresses=[*relay.ipv4, *relay.ipv6], admin_state=relay.state.value,
                usable=inputs.usable(key), state=state,
                **_health(inputs, key, state), last_latency=judged.latency if judged else None,
                last_error=None if judged is None or judged.ok or state == "drained" else judged.reason,
                drain=_drain_row(inputs.drains.get(name)),
                history=inputs.history(key),
            ))
    rows.sort(key=lambda r: (SEVERITY.index(r["state"]), natural(r["name"]), r["service"]))
    return rows


def _operations(inputs: StatusInputs) -> list[OperationRow]:
    """The operators' latest actions within the history window, newest first."""
    start = inputs.now - inputs.history_seconds
    found = [e for e in inputs.events if e.kind in OPERATOR_KINDS and e.time >= start]
    found.sort(key=lambda e: e.time, reverse=True)
    return [OperationRow(time=e.time, kind=e.kind, key=e.key, ok=e.up, by=e.by, reason=e.reason)
            for e in found[:OPERATIONS_SHOWN]]


def _drain_row(drain: Drain | None) -> DrainRow | None:
    if drain is None:
        return None
    return DrainRow(by=drain.by, reason=drain.reason, since=drain.since, until=drain.until)


# Why the builder left an entry out, in the words of the status page's `lost` rows, where health has none
LOST_REASONS = {Why.DRAINED: "priority 10000 (drained)", Why.OPERATOR_DOWN: "operator: state down",
                Why.SYNCING: "syncing: avoided while the region can do without it",
                Why.PARTIAL: "partial mirror: lacks an architecture the name requires"}


def _lost(inputs: StatusInputs, left_out: Iterable[LeftOut]) -> list[LostRow]:
    """The builder's record of a pool's left-out entries, with the health checks' reason and since when."""
    rows = []
    for left in left_out:
        if left.why is Why.DRAINED:
            rows.append(LostRow(target=left.target, state="drained", reason=LOST_REASONS[Why.DRAINED], since=None))
            continue
        if left.why is Why.OPERATOR_DRAIN:
            drain = inputs.drain(left.key)
            rows.append(LostRow(target=left.target, state="drained",
                                reason=drain.describe() if drain else "drained by operator",
                                since=drain.since if drain else None))
            continue
        judged = inputs.health.mirrors.get(left.key)
        rows.append(LostRow(target=left.target, state=inputs.state(left.key),
                            reason=judged.reason if judged else LOST_REASONS.get(left.why, ""),
                            since=inputs.since(left.key) if judged and not judged.up else None))
    return rows


def region_summaries(inputs: StatusInputs) -> list[RegionLine]:
    """One line per region: its pools, those whose entries are all unusable (served by a wider table), the
    mirrors it lost (down by health or the operator), its recent answers; regions with a problem first."""
    config, table = inputs.config, inputs.table
    recent = inputs.totals.recent_first(inputs.now)
    answered: dict[str, int] = {}
    for (label, *_), count in recent.items():
        answered[label] = answered.get(label, 0) + count
    rows: list[tuple[RegionLine, int]] = []
    for index, (label, tier) in enumerate(table.labelled_tiers()):
        pools = len(tier.usable) + len(tier.fail_open)
        if not pools:
            continue
        fallback = sorted(f"{name} {rtype.name}" for name, rtype in tier.fail_open)
        lost = {left.target for entries in tier.left_out.values() for left in entries
                if left.why in (Why.DOWN, Why.OPERATOR_DOWN, Why.PARTIAL)}
        rows.append((RegionLine(region=label, selects=selects(config, label), pool_count=pools, falls_back=fallback,
                                lost=sorted(lost, key=natural), recent_first_answers=answered.get(label, 0),
                                problem=bool(fallback or lost)), index))
    rows.sort(key=lambda r: (not r[0]["problem"], -len(r[0]["falls_back"]), -len(r[0]["lost"]), r[1]))
    return [row for row, _ in rows]


def region_details(inputs: StatusInputs, labels: Iterable[str]) -> list[RegionDetail]:
    """Every pool of the regions named, with configured (health-adjusted), delivered and observed shares, and
    the configured entries each pool lost. Unknown labels are left out."""
    config, table, totals, now = inputs.config, inputs.table, inputs.totals, inputs.now
    tiers = dict(table.labelled_tiers())
    recent_first = totals.recent_first(now)

    def entry_state(owner: str, name: str) -> str:
        target = config.mirrors.get(name) or config.relays.get(name)
        return "up" if target is None else inputs.state(target_key(config, target, owner))

    regions = []
    for label in labels:
        tier = tiers.get(label)
        if tier is None:
            continue
        pools = []
        for (name, rtype), pool in sorted({**tier.usable, **tier.fail_open}.items()):
            total = sum(pool.weights)
            firsts = {c.name: totals.first.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            answered = sum(firsts.values())
            recent = {c.name: recent_first.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            recently = sum(recent.values())
            # since this pool's entries or weights last changed (at most the recent window: older buckets
            # are not kept)
            since = inputs.changed.get((label, name, rtype.name), 0.0)
            fresh = totals.recent_first(now, min(RECENT_WINDOW, max(0.0, now - since)))
            after = {c.name: fresh.get((label, name, rtype.name, c.name), 0) for c in pool.candidates}
            after_total = sum(after.values())
            # A/AAAA: what the answer sets deliver at clients (differs where min_answers bends the weights)
            delivered: list[float] = (
                list(table.variants(pool, rtype).delivered) if rtype in (RType.A, RType.AAAA)
                else [c.weight / total if total else 0.0 for c in pool.candidates])
            pools.append(PoolRow(
                name=name, type=rtype.name, fail_open=pool.fail_open, first_answers=answered,
                recent_first_answers=recently, changed_at=since or None, first_answers_since_change=after_total,
                entries=[] if pool.fail_open else [EntryRow(
                    target=c.name, weight=c.weight, configured_share=c.weight / total if total else 0.0,
                    delivered_share=share,
                    observed_share=firsts[c.name] / answered if answered else None,
                    recent_observed_share=recent[c.name] / recently if recently else None,
                    observed_share_since_change=after[c.name] / after_total if after_total else None,
                    answers=totals.answers.get((label, name, rtype.name, c.name), 0),
                    addresses=list(c.addresses), port=c.port or None, tier=c.tier,
                    state=entry_state(name, c.name),
                ) for c, share in zip(pool.candidates, delivered)],
                lost=_lost(inputs, tier.left_out.get((name, rtype), ())),
            ))
        regions.append(RegionDetail(region=label, selects=selects(config, label), pools=pools))
    return regions


def find_region(inputs: StatusInputs, asked: str) -> str | None:
    """A region label from what a URL says: the label itself ("country JP", "continent AS", "default"),
    or a bare code: a country first, else a continent, a network table, an AS."""
    labels = [label for label, _ in inputs.table.labelled_tiers()]
    if asked in labels:
        return asked
    for level in ("country", "continent", "network", "asn"):
        label = f"{level} {asked.upper() if level != 'network' else asked}"
        if label in labels:
            return label
    return None


def summary(inputs: StatusInputs, regions: bool = True) -> Summary:
    """The whole balancer in one small document: what needs action first. `regions`: add the per-region
    lines (the metrics do without them)."""
    config, table, cycle, totals, now = inputs.config, inputs.table, inputs.cycle, inputs.totals, inputs.now
    mirrors = _mirrors(inputs)
    relays = _relays(inputs)
    queries = sum(totals.queries.values())
    located = sum(n for (_, _, country, _), n in totals.queries.items() if country)
    settings = config.settings.health
    region_rows = region_summaries(inputs) if regions else []
    counted: dict[str, int] = {}
    for row in [*mirrors, *relays]:
        counted[row["state"]] = counted.get(row["state"], 0) + 1
    document = Summary(**inputs.inputs,  # type: ignore[typeddict-item]  # the served inputs' keys come first
                       zone=config.settings.zone,
                       generation=table.generation,
                       udp_fast_path=native.describe(),  # which UDP fast path the answerers run, and why
                       table_age_seconds=max(0.0, now - inputs.built_at),
                       now=now,
                       fail_open=fail_open_names(table),  # default-table names served with health ignored
                       health={"enabled": settings.enabled, "interval": settings.interval, "fall": settings.fall,
                               "rise": settings.rise, "history_seconds": inputs.history_seconds},
                       last_cycle=None if cycle is None else {
                           "started": cycle.started, "duration": cycle.duration, "master": cycle.master_note,
                           "kept_previous": [kind.value for kind in {v.kind for v in cycle.verdicts}
                                             if cycle.all_failed(kind)],
                           "warnings": list(cycle.warnings)},
                       states=counted,  # mirrors and relay services per shown state
                       mirrors=mirrors,
                       relays=relays,
                       # configured_share: weight over the usable entries' weight (health-adjusted, as the table
                       # draws); observed_share: first answers since the counters' reset (or first start),
                       # recent_: last window
                       shares={"configured": "health-adjusted weight share", "observed_since": totals.reset_at or None,
                               "recent_window_seconds": RECENT_WINDOW},
                       # per region, one line; `/status.json?region=LABEL` (or ?page=N) has the pools
                       regions=region_rows,
                       region_pages=(len(region_rows) + PAGE_SIZE - 1) // PAGE_SIZE,
                       queries={"total": queries, "no_country_share": (queries - located) / queries if queries else None,
                                "ecs": totals.ecs, "unique_clients": totals.clients.count()},
                       reloads=dict(inputs.reloads),
                       dnssec=dnssec_state(inputs.signing, config.settings.dnssec.refresh, inputs.key_source),
                       operations=_operations(inputs),
                       assessment=assessment(inputs).as_json())  # what `dnsbalance status` reports
    return document


def assessment(inputs: StatusInputs) -> Assessment:
    """The monitoring verdict (ops/monitoring.py) on the table in service, by the rules `probe` uses."""
    cycle = inputs.cycle
    prober = [] if cycle is None else [f"every {kind.value} failed in the last cycle: {cycle.likely_cause(kind)}; "
                                       "the previous health is kept" for kind in TargetKind if cycle.all_failed(kind)]
    reasons = {key: health.reason for key, health in inputs.health.mirrors.items()}
    return assess(inputs.config, inputs.table, reasons, prober,
                  judged_yet=cycle is not None or inputs.health.cycles > 0 or bool(inputs.health.mirrors))
