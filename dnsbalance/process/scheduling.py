"""The health cycle on the server's event loop: APScheduler runs it at start-up and every `interval`."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dnsbalance.cluster.member import ClusterMember, offset, shared_digest
from dnsbalance.configuration.problems import Severity
from dnsbalance.health import policy
from dnsbalance.health.cycle import CycleReport, observe
from dnsbalance.health.external import ExternalFile
from dnsbalance.health.fetch import new_client
from dnsbalance.health.observations import Observed
from dnsbalance.health.settings import policy_settings
from dnsbalance.process.background import in_build_thread
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import Fingerprint, fingerprint

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
        self.client_made = self._client_settings()
        self.client = new_client(*self.client_made[:2], source=self.client_made[2])
        self.interval = balancer.config.settings.health.interval
        self.noticed: Fingerprint | None = None  # files on disk already reported as not applied
        self.external: ExternalFile | None = None  # outside observations (health/external.py)
        self.warned: frozenset[str] = frozenset()  # the cycle warnings already logged as warnings
        self.cluster = cluster_member(balancer)  # None without `cluster:` (dnsbalance/cluster/)
        if self.cluster is not None:
            balancer.cluster = self.cluster.view
        self.loop: asyncio.AbstractEventLoop | None = None
        self.following: asyncio.Task[None] | None = None  # applying the watch's news
        self.again = False  # news came while it ran
        self.leaving: set[asyncio.Task[None]] = set()
        # told on the watch's thread of every change under the prefix (the cluster's drains follower): must not block
        self.listeners: list[Callable[[], None]] = []

    def _client_settings(self) -> tuple[int, str | None, str | None]:
        health = self.balancer.config.settings.health
        return health.concurrency, health.ca, health.source

    def start(self) -> None:
        """Call from inside the running loop. The first cycle runs now; one at a time, missed runs merged."""
        self.loop = asyncio.get_running_loop()
        self._follow_cluster()
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

    def watched(self, prefix: str) -> list[tuple[str, bytes]] | None:
        """Every value under `prefix` as the member's streaming watch has it; None while no watch streams (or it
        streams another prefix, after a reload). Read from other threads (the board is thread-safe)."""
        member = self.cluster
        if member is None or not member.watching or member.settings.prefix != prefix:
            return None
        return member.board.values()

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        await self.client.aclose()
        if self.cluster is not None:
            await self.cluster.stop()  # its vote withdrawn, within about a second

    def _follow_cluster(self) -> None:
        """Start the member's watch: its news is applied on this loop (never on the watch's thread)."""
        loop, member = self.loop, self.cluster
        if loop is None or member is None:
            return

        def news() -> None:  # on the watch's thread
            loop.call_soon_threadsafe(self._news, member)
            for listener in self.listeners:
                listener()
        member.follow(news)

    def _news(self, member: ClusterMember) -> None:
        if member is not self.cluster:
            return  # a member that has left
        if self.following is not None and not self.following.done():
            self.again = True  # the running application reads the board again when done
            return
        self.following = asyncio.create_task(self._apply_news(member))

    async def _apply_news(self, member: ClusterMember) -> None:
        """The consensus as the watch brought it: a target whose decision changed goes in or out now, under the
        table lock (as a cycle would), never holding up answering; each burst of news applied once."""
        try:
            while True:
                self.again = False
                applied = False
                async with self.lock:
                    if member is not self.cluster:
                        return
                    extra = member.between(policy_settings(self.balancer.loaded.config).known)
                    self.balancer.cluster = member.view
                    if extra:
                        applied = await in_build_thread(self.balancer.apply_between, extra, time.time())
                if applied and self.on_change is not None:
                    await self.on_change()
                if applied:
                    log.info("cluster: the others' votes moved a target between cycles: table generation %d in "
                             "service", self.balancer.generation)
                if not self.again:
                    return
        except Exception:
            log.exception("cluster: applying the others' votes failed; the next cycle applies them")

    async def shared_view(self, observed: Observed) -> None:
        """With `cluster:`: publish this cycle's raw verdicts and read the others', and take in the push references
        other instances moved first. Bounded; never raises. The consensus itself is taken in `with_consensus`."""
        if self.cluster is None:
            return
        config, health = self.balancer.loaded.config, self.balancer.health
        settings = policy_settings(config)
        own = policy.judge(observed, settings, health.archives, observed.started)
        digest = shared_digest(self.balancer.loaded.files, config.settings)
        await self.cluster.exchange(own.verdicts, health, digest)
        async with self.lock:  # the watch's news (apply_between) writes the health state under it too
            archives = self.cluster.adopt(self.balancer.health.archives)
            if archives != self.balancer.health.archives:
                self.balancer.health = dataclasses.replace(self.balancer.health, archives=archives)

    def with_consensus(self, observed: Observed) -> Observed:
        """Under the table lock: the consensus of the live instances as the board has it now (the watch may have
        brought news since the exchange), in through the health door."""
        if self.cluster is None:
            return observed
        extra = self.cluster.consensus(policy_settings(self.balancer.loaded.config).known)
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
        """After a reload: follow a changed interval, and changed `cluster:` settings."""
        interval = self.balancer.config.settings.health.interval
        rejoined = self.rejoin()
        if (interval != self.interval or rejoined) and self.scheduler.get_job(JOB) is not None:
            self.interval = interval
            self.scheduler.reschedule_job(JOB, trigger="interval", seconds=interval, **self._spread())
            log.info("health cycle every %gs", interval)
        self.interval = interval

    def rejoin(self) -> bool:
        """After a reload: with other `cluster:` settings (or another interval, which sets the lease), leave the
        cluster and join it again with the new ones; answering goes on throughout (it never touches etcd). A new
        `health.source` alone only changes what the vote says (the probes follow it at the next cycle)."""
        settings = self.balancer.config.settings
        old = self.cluster
        if old is not None and (old.settings, old.interval) == (settings.cluster, settings.health.interval):
            old.source = settings.health.source or ""
            return False
        if old is None and settings.cluster is None:
            return False
        self.cluster = cluster_member(self.balancer)
        self.balancer.cluster = self.cluster.view if self.cluster is not None else None
        self._follow_cluster()
        if self.cluster is not None:
            log.info("cluster: %s as %s on %d etcd endpoint(s), prefix %s", "rejoined" if old else "joined",
                     self.cluster.settings.instance, len(self.cluster.settings.etcd), self.cluster.settings.prefix)
        else:
            log.info("cluster: left (no cluster: in the configuration); this instance's own verdicts from now")
        if old is not None:
            same = self.cluster is not None and (old.settings.prefix, old.settings.instance) == \
                (self.cluster.settings.prefix, self.cluster.settings.instance)
            task = asyncio.get_running_loop().create_task(old.leave(keep_vote=same))
            self.leaving.add(task)
            task.add_done_callback(self.leaving.discard)
        return True

    async def _new_client(self) -> None:
        """A changed health.source (or concurrency, or CA) after a reload: probes leave from the new address from
        this cycle on. Between cycles, so no probe is cut."""
        wanted = self._client_settings()
        if wanted == self.client_made:
            return
        old, self.client_made = self.client, wanted
        self.client = new_client(wanted[0], wanted[1], source=wanted[2])
        await old.aclose()
        log.info("health: probes leave from %s from now", wanted[2] or "the default address")

    async def changed_files(self) -> None:
        """Apply edited files now (reload.auto_apply), or say once per edit that they wait for a reload."""
        if self.balancer.config.settings.reload.auto_apply:
            log.info("configuration files changed; reloading before the cycle (reload.auto_apply)")
            async with self.lock:  # built on a thread: the event loop (status, pings) goes on
                problems = await in_build_thread(self.balancer.reload, self.config_dir, "reload.auto_apply")
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
            await self._new_client()
            observed = await observe(config, self.client, config.settings.health.concurrency, [self.external])
            await self.shared_view(observed)
            async with self.lock:
                observed = self.with_consensus(observed)
                applied = await in_build_thread(self.balancer.apply, observed)
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
