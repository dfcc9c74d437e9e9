"""One probe cycle: the master's stamp and every mirror's, fetched concurrently under one deadline each."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from dnsbalance.configuration.model import Config, Mirror, Relay, health_key
from health.fetch import fetch
from health.relay_probe import RelayCheck, check
from health.stamp import Stamp, parse_stamp
from health.verdict import Verdict, judge


@dataclass(frozen=True)
class CycleReport:
    started: float  # unix time
    duration: float  # seconds
    master: Stamp | None
    master_note: str  # what became of the master read
    verdicts: tuple[Verdict, ...]

    def all_failed(self, kind: str) -> bool:
        """Every probed mirror (or relay service) failed: more likely the prober's fault than theirs."""
        judged = [v for v in self.verdicts if v.kind == kind]
        return bool(judged) and not any(v.ok for v in judged)


def stamp_url(base: str, stamp: str) -> str:
    return base.rstrip("/") + "/" + stamp.lstrip("/")


def probed(config: Config) -> list[Mirror]:
    """Mirrors with a URL are probed; an operator's up/down still wins when the table is built."""
    return [m for m in config.mirrors.values() if m.url]


async def run_cycle(config: Config, client: httpx.AsyncClient, concurrency: int = 200) -> CycleReport:
    settings = config.settings.health
    started, clock = time.time(), time.monotonic()
    gate = asyncio.Semaphore(concurrency)

    async def bounded(url: str):  # type: ignore[no-untyped-def]
        async with gate:
            return await fetch(client, url, settings.timeout)

    mirrors = probed(config)
    master_task = (asyncio.create_task(bounded(stamp_url(settings.master, settings.stamp)))
                   if settings.master else None)
    results = await asyncio.gather(*(bounded(stamp_url(m.url or "", settings.stamp)) for m in mirrors))

    master: Stamp | None = None
    if master_task is None:
        note = "no master configured: liveness only"
    else:
        fetched = await master_task
        if fetched.ok:
            master = parse_stamp(fetched.body, fetched.last_modified)
            note = f"master {master.describe()}"
        else:
            note = f"master unreadable ({fetched.error}): freshness not checked this cycle"
    verdicts = tuple(judge(m.name, r, master, settings.max_lag) for m, r in zip(mirrors, results))
    relay_verdicts = await _relays(config, gate)
    return CycleReport(started, time.monotonic() - clock, master, note, verdicts + relay_verdicts)


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
                                latency=max(r.latency for r in results), kind="relay"))
    return tuple(verdicts)
