"""This name server's part in the cluster, run from the health cycle: publish its vote, read the others', decide,
and share the push references; between cycles, follow the others' votes as the watch (watch.py) brings them.
etcd is a help, never a dependency: every exchange runs on a thread of its own under one deadline, and whatever
goes wrong, the cycle goes on with this instance's own verdicts.

Connection changes are logged once each way; an ignored value once per key and reason.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dnsbalance.cluster import layout, shared_reference
from dnsbalance.cluster import vote as votes
from dnsbalance.cluster.board import Board
from dnsbalance.cluster.consensus import Decision, decide, externals
from dnsbalance.cluster.etcd import EtcdDown, EtcdLink
from dnsbalance.cluster.view import ClusterView
from dnsbalance.cluster.watch import Watcher
from dnsbalance.configuration.model import ClusterSettings, Settings
from dnsbalance.serving.inputs import digest_of
from dnsbalance.health.observations import External
from dnsbalance.health.reference import Reference
from dnsbalance.health.state import HealthState, MirrorHealth
from dnsbalance.health.policy import all_failed
from dnsbalance.health.verdict import TargetKind, Verdict

log = logging.getLogger(__name__)
LEASE_INTERVALS = 3  # a vote outlives its instance by about three intervals
STOP_BUDGET = 1.0  # seconds a stop may spend withdrawing the vote: a dead or silent etcd never holds it up longer


def request_timeout(interval: float) -> float:
    """Per request: short next to the interval, so a silent etcd costs a cycle at most a few seconds."""
    return max(0.5, min(2.0, interval / 4))


def offset(instance: str, interval: float) -> float:
    """Where in the interval this instance's cycles run: spread by name, the same at every start."""
    return (zlib.crc32(instance.encode()) % 1000) / 1000 * interval


def shared_digest(files: Mapping[str, bytes], settings: Settings) -> str:
    """Of the configuration as every name server should have it: the files, with what is each host's own in
    dnsbalance.yaml (listen addresses, state folder, instance name, probe source) left out."""
    # of `cluster:`, what every name server must agree on (endpoints may be listed nearest first)
    agreed = (settings.cluster.down_quorum, settings.cluster.instances) if settings.cluster else None
    common = dataclasses.replace(settings, listen=(), status_listen=None, state_dir=Path("."), cluster=None,
                                 health=dataclasses.replace(settings.health, source=None))
    shared = {name: data for name, data in files.items() if name != "dnsbalance.yaml"}
    shared["dnsbalance.yaml: shared settings"] = repr((common, agreed) if agreed else common).encode()
    return digest_of(shared)[:16]


@dataclasses.dataclass(frozen=True)
class Read:
    """What one read of the prefix held."""

    votes: tuple[votes.Vote, ...]
    references: Mapping[str, tuple[bytes, Reference]]  # archive -> (stored value, reference)
    ignored: tuple[str, ...]
    unknown: tuple[str, ...] = ()  # instance names that wrote a vote but are not in cluster.instances


def read_prefix(entries: list[tuple[str, bytes]], prefix: str, allowed: tuple[str, ...] = ()) -> Read:
    """The votes and references under the prefix, pure; anything else is listed as ignored, with why. With an
    allow-list (`cluster.instances`), a vote under any other name is ignored and its writer listed as unknown."""
    found, references, ignored, unknown = [], {}, [], []
    for key, value in entries:
        where = layout.split(prefix, key)
        shown = key[len(prefix):][:80]
        if where is None:
            ignored.append(f"{shown}: not a key of this layout")
            continue
        folder, name = where
        if folder in (layout.DRAINS, layout.DNSSEC):
            continue  # operators' drains (cluster/drains.py) and the zone's keys (cluster/keystore.py)
        if folder == layout.VOTES and allowed and name not in allowed:
            ignored.append(f"{shown}: {name[:63]} is not in cluster.instances")
            unknown.append(name[:63])
            continue
        try:
            if folder == layout.VOTES:
                found.append(votes.parse(value, name))
            else:
                references[name] = (value, shared_reference.parse(value))
        except ValueError as exc:  # BadVote too
            ignored.append(f"{shown}: {exc}")
    return Read(tuple(found), MappingProxyType(references), tuple(ignored), tuple(unknown))


def warm_start(settings: ClusterSettings, health: HealthState, known: Mapping[str, str], now: float,
               timeout: float = 1.0) -> HealthState:
    """Before the first table: the cluster's current verdicts (what the live instances serve without), and its
    push references. etcd unreachable: `health` as it was, logged."""
    link = EtcdLink(settings, timeout)
    try:
        read = read_prefix(link.get_prefix(settings.prefix), settings.prefix, settings.instances)
    except EtcdDown as exc:
        log.warning("cluster: etcd not reachable at start (%s): starting on this instance's saved verdicts", exc)
        return health
    finally:
        link.close()
    for problem in read.ignored:
        log.warning("cluster: ignored %s%s", settings.prefix, problem)
    if not read.votes:
        log.info("cluster: no live instance in etcd yet: starting on this instance's saved verdicts")
        return health
    decisions = decide(read.votes, settings.down_quorum, of="out")
    mirrors = dict(health.mirrors)
    for key in known:
        if key in decisions:
            up = decisions[key].up
            reason = f"{'in' if up else 'out'} at start, as the cluster serves it ({decisions[key].describe()})"
            mirrors[key] = MirrorHealth(up, 0, reason, now, now)
    archives = adopt(health.archives, read.references)
    out = sorted(k for k in known if k in decisions and not decisions[k].up)
    log.info("cluster: started from %d live instances' verdicts (%s); out: %s", len(read.votes),
             ", ".join(v.instance for v in read.votes), ", ".join(out) or "nothing")
    return HealthState(MappingProxyType(mirrors), health.cycles, MappingProxyType(dict(archives)), health.names)


def adopt(archives: Mapping[str, Reference], shared: Mapping[str, tuple[bytes, Reference]]
          ) -> Mapping[str, Reference]:
    """This instance's references, each replaced by the shared one where that is ahead."""
    merged = dict(archives)
    for name, (_, reference) in shared.items():
        if shared_reference.ahead(reference, merged.get(name)):
            merged[name] = reference
    return MappingProxyType(merged)


def observed(verdicts: tuple[Verdict, ...]) -> tuple[Verdict, ...]:
    """The verdicts a vote may carry: of a kind whose every target failed at once, none. The prober is the
    likely fault (a loaded or cut-off host), as the local policy has it; voting them all down would take them out
    everywhere the moment two name servers have such a cycle together."""
    suspected = {kind for kind in TargetKind if all_failed(verdicts, kind)}
    # nor an address this instance has no route to: it saw nothing there (health/route.py); those that reach it
    # decide for it
    return tuple(v for v in verdicts if v.kind not in suspected and not v.unchecked)


def revoke_soon(settings: ClusterSettings, lease: int) -> concurrent.futures.Future[None]:
    """Revoke `lease` on a daemon thread of its own: the process never waits for it at exit."""
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def revoke() -> None:
        link = EtcdLink(settings, STOP_BUDGET)
        try:
            link.revoke(lease)
            outcome: BaseException | None = None
        except EtcdDown as exc:
            outcome = exc
        finally:
            link.close()
        if not done.set_running_or_notify_cancel():
            return  # the stop gave up waiting already
        if outcome is None:
            done.set_result(None)
        else:
            done.set_exception(outcome)

    threading.Thread(target=revoke, name="dnsbalance-etcd-revoke", daemon=True).start()
    return done


def _retrieved(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


class ClusterMember:
    def __init__(self, settings: ClusterSettings, interval: float, digest: str, source: str | None = None) -> None:
        self.settings = settings
        self.interval = interval
        self.timeout = request_timeout(interval)
        self.link = EtcdLink(settings, self.timeout)
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dnsbalance-etcd")
        self.busy: asyncio.Future[object] | None = None
        self.lease: int | None = None
        self.cycle = 0
        self.source = source or ""
        self.reported: set[str] = set()  # ignored values already logged
        self.shared: Mapping[str, tuple[bytes, Reference]] = MappingProxyType({})
        self.view = ClusterView(settings.instance, settings.down_quorum, digest)
        self.board = Board()  # every value under the prefix as last known: the cycle's reads and the watch's news
        self.mine: votes.Vote | None = None  # this instance's vote as last built
        self.published = False  # whether the last exchange wrote it (else: the watch's board alone)
        self.applied: dict[str, bool] = {}  # the consensus last handed to the health door, per target
        self.watcher: Watcher | None = None
        self.stopping = False  # set by stop(): no new lease after the vote is withdrawn

    def follow(self, news: Callable[[], None]) -> None:
        """Start the watch (`cluster.watch`); `news` is called on the watch's thread after each change."""
        if self.settings.watch and self.watcher is None:
            self.watcher = Watcher(self.settings, self.interval, self.timeout, self.board, news, self.link.traffic)
            self.watcher.start()

    @property
    def watching(self) -> bool:
        return self.watcher is not None and self.watcher.streaming is True

    @property
    def deadline(self) -> float:
        """For one exchange, all its requests together: a slow etcd costs a cycle this much at most."""
        return self.timeout * 2

    async def _run(self, work: object, *args: object) -> object:
        if self.busy is not None and not self.busy.done():
            raise EtcdDown("the previous request to etcd is still waiting")
        loop = asyncio.get_running_loop()
        self.busy = loop.run_in_executor(self.executor, work, *args)  # type: ignore[arg-type]
        self.busy.add_done_callback(_retrieved)  # one that ends after its deadline is no error of the loop's
        try:
            return await asyncio.wait_for(asyncio.shield(self.busy), self.deadline)
        except TimeoutError:
            raise EtcdDown(f"no answer within {self.deadline:g}s") from None

    def _exchange(self, value: bytes) -> None:
        """On the etcd thread: keep the lease (a new one after an outage), write the vote, read everything."""
        ttl = max(2, math.ceil(self.interval * LEASE_INTERVALS))
        if self.stopping:  # a cycle still running at a stop must not publish a vote under a fresh lease
            raise EtcdDown("stopping")
        if self.lease is None or not self.link.refresh(self.lease):
            self.lease = self.link.grant(ttl)
        self.link.put(layout.vote_key(self.settings.prefix, self.settings.instance), value, self.lease)
        self.board.read(*self.link.range(self.settings.prefix))

    async def exchange(self, verdicts: tuple[Verdict, ...], health: HealthState, digest: str) -> bool:
        """Publish this cycle's raw verdicts and read the others' (bounded). False when etcd could not be reached
        and no watch holds the others' votes either: `consensus` then gives nothing (this instance's own
        verdicts)."""
        self.cycle += 1
        verdicts = observed(verdicts)
        self.mine = votes.Vote(self.settings.instance, digest, self.cycle, frozenset(v.name for v in verdicts if v.ok),
                               frozenset(v.name for v in verdicts if not v.ok),
                               frozenset(k for k, h in health.mirrors.items() if not h.up), self.source)
        self.view = dataclasses.replace(self.view, digest=digest)
        try:
            await self._run(self._exchange, votes.encode(self.mine))
        except EtcdDown as exc:
            if self.watching:  # the others' votes are still current: decide on them, say this one was not sent
                log.warning("cluster: this cycle's vote was not published (%s); deciding on the others' votes as "
                            "the watch has them", exc)
                self.published = False
                self.view = dataclasses.replace(self.view, problem=f"vote not published: {exc}")
                return True
            self._lost(str(exc))
            return False
        self.published = True
        self._connected()
        return True

    def consensus(self, known: Mapping[str, str]) -> tuple[External, ...]:
        """The decisions of the live instances on this configuration's targets, from the board as it is now, as
        observations for the health door (none when no other instance is live or etcd is out of reach)."""
        if self.view.connected is not True or self.mine is None:
            self.applied = {}
            return ()
        decisions = self._decide()
        self.applied = {key: d.up for key, d in decisions.items() if key in known}
        return externals(decisions, known)

    def between(self, known: Mapping[str, str]) -> tuple[External, ...]:
        """Between cycles, after news from the watch: the decisions that differ from the ones last handed over
        (each counts once through fall/rise, as a cycle's would); () when none does."""
        if self.view.connected is not True or self.mine is None:
            return ()
        decisions = self._decide()
        changed = {key: d for key, d in decisions.items() if key in known and self.applied.get(key) != d.up}
        self.applied.update({key: d.up for key, d in changed.items()})
        return externals(changed, known)

    def _decide(self) -> Mapping[str, Decision]:
        """From this instance's vote and the board's; updates the view (peers, decisions, ignored values)."""
        assert self.mine is not None
        read = read_prefix(self.board.values(), self.settings.prefix, self.settings.instances)
        self._report(read.ignored)
        self.shared = read.references
        peers = tuple(v for v in read.votes if v.instance != self.settings.instance)
        decisions = decide((self.mine, *peers), self.settings.down_quorum) if peers else MappingProxyType({})
        self.view = dataclasses.replace(self.view, peers=peers, mine=self.mine, decisions=decisions,
                                        ignored=read.ignored, unknown=read.unknown, **self._watch(),
                                        **self._traffic())
        return decisions

    def adopt(self, archives: Mapping[str, Reference]) -> Mapping[str, Reference]:
        return adopt(archives, self.shared)

    async def share(self, archives: Mapping[str, Reference]) -> None:
        """Move the shared reference of each archive this instance is ahead on, by compare-and-swap: of two
        instances that saw a push at once, one moves it and the other adopts it at its next cycle."""
        ahead = {name: ref for name, ref in archives.items()
                 if shared_reference.ahead(ref, self.shared[name][1] if name in self.shared else None)}
        if not ahead or not self.view.connected:
            return

        def swap() -> None:
            for name, ref in ahead.items():
                key, new = layout.reference_key(self.settings.prefix, name), shared_reference.encode(ref)
                old = self.shared.get(name)
                moved = self.link.replace(key, old[0], new) if old else self.link.create(key, new)
                log.info("cluster: push reference of %s %s %s", name, "moved to" if moved else
                         "already moved by another instance; not to", ref.serial)
        try:
            await self._run(swap)
        except EtcdDown as exc:
            log.info("cluster: push reference not shared this cycle (%s)", exc)

    def _lost(self, problem: str) -> None:
        if self.view.connected is not False:
            log.warning("cluster: etcd unreachable (%s); serving this instance's own verdicts until it is back",
                        problem)
        self.lease = None if self.view.connected is not False else self.lease
        self.applied = {}
        self.view = dataclasses.replace(self.view, connected=False, problem=problem, peers=(), mine=self.mine,
                                        decisions=MappingProxyType({}),
                                        since=self.view.since if self.view.connected is False else time.time(),
                                        **self._watch(), **self._traffic())

    def _connected(self) -> None:
        if self.view.connected is not True:
            peers = sorted({key[len(self.settings.prefix) + len(layout.VOTES):] for key, _ in self.board.values()
                            if key.startswith(self.settings.prefix + layout.VOTES)} - {self.settings.instance})
            log.info("cluster: %s etcd; %d other live instances (%s)", "back on" if self.view.connected is False
                     else "connected to", len(peers), ", ".join(peers) or "none")
        self.view = dataclasses.replace(self.view, connected=True, problem="",
                                        since=self.view.since if self.view.connected is True else time.time())

    def _watch(self) -> dict[str, Any]:
        watcher = self.watcher
        return {"watching": None if watcher is None else watcher.streaming,
                "watch_events": 0 if watcher is None else watcher.events}

    def _traffic(self) -> dict[str, Any]:
        t = self.link.traffic
        return {"requests": t.requests, "sent": t.sent, "received": t.received}

    def _report(self, ignored: tuple[str, ...]) -> None:
        for problem in ignored:
            if problem not in self.reported:
                log.warning("cluster: ignored %s%s", self.settings.prefix, problem)
        self.reported = set(ignored)  # one that goes and comes back is logged again

    async def leave(self, keep_vote: bool) -> None:
        """Stop for good (a reload with other cluster settings): the watch, and, unless the next member writes
        under the same key, the vote (its lease revoked, so the others stop counting it now, not in three
        intervals). Bounded like an exchange."""
        if self.watcher is not None:
            self.watcher.stop()
        lease = self.lease
        if lease is not None and not keep_vote:
            try:
                await self._run(self.link.revoke, lease)
            except EtcdDown as exc:
                log.info("cluster: the previous vote could not be withdrawn (%s); it expires with its lease", exc)
        self.close()

    async def stop(self) -> None:
        """A graceful stop (SIGTERM): the vote withdrawn now, its lease revoked, so the others stop counting this
        instance as a live vantage point at once instead of after three intervals. At most STOP_BUDGET seconds: the
        revoke runs on a daemon thread with a link of its own (the member's thread may be stuck in an exchange) and
        is abandoned after that; the vote then expires with its lease, as after a crash."""
        self.stopping = True
        if self.watcher is not None:
            self.watcher.stop()
        lease = self.lease
        if lease is not None:
            started = time.monotonic()
            try:
                await asyncio.wait_for(asyncio.wrap_future(revoke_soon(self.settings, lease)), STOP_BUDGET)
                log.info("cluster: vote withdrawn at stop (lease revoked in %.2fs): the others stop counting this "
                         "instance now", time.monotonic() - started)
            except (TimeoutError, EtcdDown) as exc:
                log.info("cluster: vote not withdrawn at stop (%s); it expires with its lease",
                         exc or f"no answer within {STOP_BUDGET:g}s")
        self.close()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.link.close()
