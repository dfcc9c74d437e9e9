"""One probe cycle: per archive, the master's stamp and every mirror's stamp and lock file, fetched concurrently
under one deadline each, then judged against the archive's reference (health/reference.py, pure)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, cast
from urllib.parse import urlsplit

import httpx

from dnsbalance.configuration.model import (
    Archive,
    Config,
    Mirror,
    Relay,
    archives_of,
    fallback_archive,
    health_key,
    mirror_key,
)
from health.fetch import Fetched, fetch
from health.reference import Probe, Reference, judge_archive, master_stamp
from health.relay_probe import RelayCheck, check
from health.stamp import Stamp
from health.state import HealthState
from health.verdict import TargetKind, Verdict


@dataclass(frozen=True)
class CycleReport:
    started: float  # unix time
    duration: float  # seconds
    master: Stamp | None  # the first archive's master stamp
    master_note: str  # what became of the master reads (one per archive, named when there are several)
    verdicts: tuple[Verdict, ...]
    references: Mapping[str, Reference] = field(default_factory=lambda: MappingProxyType({}))  # per archive

    def all_failed(self, kind: TargetKind) -> bool:
        """Every probed mirror (or relay service) failed: more likely the prober's fault than theirs."""
        judged = [v for v in self.verdicts if v.kind == kind]
        return bool(judged) and not any(v.ok for v in judged)

    def likely_cause(self, kind: TargetKind) -> str:
        """Why every verdict of `kind` failed at once, as the all-failed guard tells it."""
        failed = [v for v in self.verdicts if v.kind == kind and not v.ok]
        causes = {v.cause for v in failed}
        if kind is TargetKind.MIRROR and causes == {"stale"}:
            serials = sorted({r.master for r in self.references.values() if r.master})
            return (f"every mirror is behind the serial the master just published ({', '.join(serials) or '?'}): "
                    "a push no mirror has finished, or a master ahead of its mirrors")
        if causes == {"not-trace"}:
            return "every mirror served something that is not a trace file: a wrong stamp path is likely"
        if causes <= {"unreachable", ""}:
            return "no mirror could be reached: the prober's network (or its resolver) is the likely fault"
        return "the prober is the likely fault (" + ", ".join(sorted(c or "unreachable" for c in causes)) + ")"


def stamp_url(base: str, stamp: str) -> str:
    return base.rstrip("/") + "/" + stamp.lstrip("/")


def lock_name(mirror: Mirror, base: str) -> str:
    """ftpsync's `Archive-Update-in-Progress-<MIRRORNAME>`; MIRRORNAME defaults to the host's name, taken here
    from the URL the mirror is probed at. "" when the mirror says `lock: off`."""
    if mirror.lock is not None:
        return mirror.lock
    return f"Archive-Update-in-Progress-{urlsplit(base).hostname or ''}"


def probed(config: Config) -> list[Mirror]:
    """Mirrors with a URL are probed; an operator's up/down still wins when the table is built."""
    return [m for m in config.mirrors.values() if m.probed()]


def carried(config: Config) -> list[tuple[Archive, Mirror, str]]:
    """(archive, mirror, base URL) for every archive each probed mirror carries."""
    archives = archives_of(config.settings)
    fallback = fallback_archive(archives)
    return [(archive, mirror, url) for archive in archives for mirror in probed(config)
            if (url := mirror.url_for(archive, fallback))]


def health_keys(config: Config) -> list[str]:
    """Every key a cycle may judge: (mirror, archive) pairs and relay services."""
    return [*(mirror_key(m.name, a) for a, m, _ in carried(config)),
            *(health_key(r.name, s) for r in config.relays.values() for s in r.services())]


async def run_cycle(config: Config, client: httpx.AsyncClient, concurrency: int = 200,
                    previous: HealthState | None = None) -> CycleReport:
    """Probe (I/O), then judge each archive (pure) against its reference of `previous` cycles."""
    settings = config.settings.health
    started, clock = time.time(), time.monotonic()
    gate = asyncio.Semaphore(concurrency)

    async def bounded(url: str) -> Fetched:
        async with gate:
            return await fetch(client, url, settings.timeout)

    async def nothing() -> None:
        return None

    archives = archives_of(config.settings)
    masters = [bounded(stamp_url(a.master, a.stamp)) if a.master else nothing() for a in archives]
    jobs = carried(config)
    stamps = [bounded(stamp_url(url, archive.stamp)) for archive, _, url in jobs]
    locks = [bounded(stamp_url(url, name)) if (name := lock_name(mirror, url)) else nothing()
             for _, mirror, url in jobs]
    results = await asyncio.gather(*masters, *stamps, *locks)
    master_results = results[:len(archives)]
    stamp_results = cast(list[Fetched], results[len(archives):len(archives) + len(jobs)])  # never None
    lock_results = results[len(archives) + len(jobs):]

    known = previous.archives if previous is not None else {}
    verdicts: list[Verdict] = []
    references: dict[str, Reference] = {}
    notes = []
    first_master: Stamp | None = None
    for index, archive in enumerate(archives):
        probes = [Probe(mirror_key(mirror.name, archive), stamp, lock, lock_name(mirror, url))
                  for (a, mirror, url), stamp, lock in zip(jobs, stamp_results, lock_results) if a == archive]
        judged = judge_archive(archive, master_results[index], probes, known.get(archive.name), started)
        verdicts += judged.verdicts
        if judged.reference is not None:
            references[archive.name] = judged.reference
        notes.append(judged.note if len(archives) == 1 else f"{archive.name}: {judged.note}")
        if index == 0:
            first_master = master_stamp(master_results[0])[0]
    relay_verdicts = await _relays(config, gate)
    return CycleReport(started, time.monotonic() - clock, first_master, "; ".join(notes),
                       tuple(verdicts) + relay_verdicts, MappingProxyType(references))


async def _relays(config: Config, gate: asyncio.Semaphore) -> tuple[Verdict, ...]:
    """Every address of every relay service: a service is usable only when all its addresses answer."""
    timeout = config.settings.health.timeout
    jobs: list[tuple[Relay, str, str, int]] = [
        (relay, service, address, relay.port(service) or 0)
        for relay in config.relays.values() for service in relay.services()
        for address in relay.ipv4 + relay.ipv6
    ]

    async def bounded(address: str, port: int, service: str) -> RelayCheck:
        async with gate:
            return await check(address, port, service, timeout)

    checks = await asyncio.gather(*(bounded(a, p, s) for _, s, a, p in jobs))
    grouped: dict[tuple[str, str], list[RelayCheck]] = {}
    for (relay, service, _, _), result in zip(jobs, checks):
        grouped.setdefault((relay.name, service), []).append(result)
    verdicts = []
    for (name, service), results in grouped.items():
        bad = [r for r in results if not r.ok]
        shown = bad[0] if bad else results[0]
        where = f"{shown.address}:{shown.port}" if ":" not in shown.address else f"[{shown.address}]:{shown.port}"
        verdicts.append(Verdict(health_key(name, service), not bad, f"{where} {shown.detail}", url=None,
                                latency=max(r.latency for r in results), kind=TargetKind.RELAY))
    return tuple(verdicts)
