"""The health cycle on the server's event loop: APScheduler runs it at start-up and every `interval`."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dnsbalance.cluster.member import ClusterMember, offset, shared_digest
from dnsbalance.configuration.problems import Severity
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import Fingerprint, fingerprint
from dnsbalance.health import policy
from dnsbalance.health.cycle import CycleReport, observe
from dnsbalance.health.external import ExternalFile
from dnsbalance.health.fetch import new_client
from dnsbalance.health.observations import Observed
from dnsbalance.health.settings import policy_settings

log = logging.getLogger(__name__)
JOB = "health-cycle"


def cluster_member(balancer: Balancer) -> ClusterMember | None:
    config = balancer.config
    if config.settings.cluster is None:
        return None
    return ClusterMember(config.settings.cluster, config.settings.health.interval,
                         shared_digest(balancer.loaded.files, config.settings), config.settings.health.source)


class HealthScheduler:
    def __init__(self, balancer: Balancer, config_dir: Path, on_change: Callable[[], Awaitable[None]] | None = None,
                 lock: asyncio.Lock | None = None) -> None:
        """`on_change`: called after a new table (or configuration) is in service, e.g. to fork answerers;
        `lock`: held while a table is built, so that reloads and cycles take turns."""
        self.balancer = balancer
        self.lock = lock or asyncio.Lock()
        self.on_change = on_change
        self.config_dir = config_dir
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.client = new_client(balancer.config.settings.health.concurrency,
                                 balancer.config.settings.health.ca, source=balancer.config.settings.health.source)
        self.interval = balancer.config.settings.health.interval
        self.noticed: Fingerprint | None = None  # files on disk already reported as not applied
        self.external: ExternalFile | None = None  # outside observations (health/external.py)
        self.warned: frozenset[str] = frozenset()  # the cycle warnings already logged as warnings
        self.cluster = cluster_member(balancer)  # None without `cluster:` (dnsbalance/cluster/)
        if self.cluster is not None:
            balancer.cluster = self.cluster.view

    def start(self) -> None:
        """Call from inside the running loop. The first cycle runs now; one at a time, missed runs merged."""
        self.scheduler.add_job(self.cycle, "interval", seconds=self.interval, id=JOB,
                               next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
                               misfire_grace_time=None, **self._spread())
        self.scheduler.start()

    def _spread(self) -> dict[str, datetime]:
        """Several name servers: each runs its cycles at its own point of the interval (by instance name)."""
        settings = self.balancer.config.settings.cluster
        if settings is None:
            return {}
        return {"start_date": datetime.fromtimestamp(offset(settings.instance, self.interval), UTC)}

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        await self.client.aclose()
        if self.cluster is not None:
            self.cluster.close()

    async def shared_view(self, observed: Observed) -> Observed:
        """With `cluster:`: publish this cycle's raw verdicts, take the consensus of the live instances in through
        the health door, and the push references other instances moved first. Bounded; never raises."""
        if self.cluster is None:
            return observed
        config, health = self.balancer.loaded.config, self.balancer.health
        settings = policy_settings(config)
        own = policy.judge(observed, settings, health.archives, observed.started)
        digest = shared_digest(self.balancer.loaded.files, config.settings)
        extra = await self.cluster.exchange(own.verdicts, health, settings.known, digest)
        archives = self.cluster.adopt(health.archives)
        if archives != health.archives:
            self.balancer.health = dataclasses.replace(health, archives=archives)
        self.balancer.cluster = self.cluster.view
        return dataclasses.replace(observed, external=observed.external + extra)

    def warn_once(self, warnings: tuple[str, ...]) -> None:
        """A cycle's warnings (no route to an address, a lock name never confirmed) as log warnings when they
        first appear, not at every cycle: the cycle's info line and the status page keep saying them."""
        for warning in warnings:
            if warning not in self.warned:
                log.warning("health: %s", warning)
        self.warned = frozenset(warnings)

    def reschedule(self) -> None:
        """After a reload: follow a changed interval."""
        interval = self.balancer.config.settings.health.interval
        if interval != self.interval and self.scheduler.get_job(JOB) is not None:
            self.interval = interval
            self.scheduler.reschedule_job(JOB, trigger="interval", seconds=interval, **self._spread())
            log.info("health cycle every %gs", interval)

    async def changed_files(self) -> None:
        """Apply edited files now (reload.auto_apply), or say once per edit that they wait for a reload."""
        if self.balancer.config.settings.reload.auto_apply:
            log.info("configuration files changed; reloading before the cycle (reload.auto_apply)")
            async with self.lock:  # built on a thread: the event loop (status, pings) goes on
                problems = await asyncio.to_thread(self.balancer.reload, self.config_dir, "reload.auto_apply")
            if not any(p.severity is Severity.ERROR for p in problems):
                if self.on_change is not None:
                    await self.on_change()
                log.info("configuration reloaded from %s (table generation %d in service)", self.config_dir,
                         self.balancer.generation)
            self.reschedule()
            return
        seen = fingerprint(self.config_dir)
        if seen != self.noticed:
            self.noticed = seen
            log.warning("configuration files in %s differ from the configuration in service and are not applied "
                        "(reload.auto_apply is off): `dnsbalance plan` shows what they change, `dnsbalance "
                        "reload` applies them", self.config_dir)

    async def cycle(self) -> CycleReport | None:
        """One cycle; an exception is logged and the next cycle still runs."""
        try:
            if self.balancer.changed_on_disk(self.config_dir):
                await self.changed_files()
            config = self.balancer.config
            # the external file is named by the state folder in service (a reload may move it)
            if self.external is None or self.external.path != self.balancer.state.external:
                self.external = ExternalFile(self.balancer.state.external)
            observed = await observe(config, self.client, config.settings.health.concurrency, [self.external])
            observed = await self.shared_view(observed)
            async with self.lock:
                applied = await asyncio.to_thread(self.balancer.apply, observed)
            if self.cluster is not None:
                await self.cluster.share(self.balancer.health.archives)
            report = self.balancer.last_cycle  # apply() records every cycle it is given
            if report is not None:
                good = sum(v.ok for v in report.verdicts)
                log.info("health cycle: %d of %d mirrors and relay services usable in %.2fs; %s", good,
                         len(report.verdicts), report.duration, report.master_note)
                for verdict in report.verdicts:
                    if not verdict.ok:
                        log.info("  %s: %s", verdict.name, verdict.reason)
                self.warn_once(report.warnings)
            if applied:
                if self.on_change is not None:
                    await self.on_change()
                log.info("health cycle done: table generation %d in service", self.balancer.generation)
            else:
                log.info("health cycle done: table generation %d kept", self.balancer.generation)
            return report
        except asyncio.CancelledError:  # the server is shutting down mid-cycle (a hand-over may take seconds)
            log.info("health cycle stopped: shutting down")
            return None
        except Exception:
            log.exception("health cycle failed; the table in service stays, the next cycle runs as planned")
            return None
