"""One probe cycle: the master's stamp and every mirror's, fetched concurrently under one deadline each."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from dnsbalance.configuration.model import Config, Mirror
from health.fetch import fetch
from health.stamp import Stamp, parse_stamp
from health.verdict import Verdict, judge


@dataclass(frozen=True)
class CycleReport:
    started: float  # unix time
    duration: float  # seconds
    master: Stamp | None
    master_note: str  # what became of the master read
    verdicts: tuple[Verdict, ...]

    @property
    def all_failed(self) -> bool:
        return bool(self.verdicts) and not any(v.ok for v in self.verdicts)


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
    return CycleReport(started, time.monotonic() - clock, master, note, verdicts)
