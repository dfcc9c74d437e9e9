"""Operators' drains shared by every name server (`PREFIX drains/TARGET`, no lease: a drain lasts until undrained or
its `until`). `dnsbalance drain` publishes to etcd first and then writes its own state folder; every server
follows etcd's drains into its own state folder's drains file, and from there into its tables as any drain
(process/draining.py). So each instance keeps applying the last drains it saw while etcd is unreachable, and after
a restart.

How a server learns of them: through the watch that already streams the whole prefix for the votes
(watch.py into board.py): the watch's news wakes the follower, which reads the drains off the board, with no
request of its own. Only while no watch streams (it is down or being opened again, `cluster.watch: false`, or
health checks off) does the follower read etcd's `drains/` keys itself, every FALLBACK seconds, each read bounded
by TIMEOUT (the pacing and the thread are follower.py's, shared with the DNSSEC keys' follower).

A drain that ran out is taken out of etcd by whichever instance sees it first (a delete: harmless twice).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dnsbalance import drains as operator_drains
from dnsbalance.cluster import layout
from dnsbalance.cluster.etcd import EtcdDown, EtcdLink
from dnsbalance.cluster.follower import TIMEOUT, Follower, Watched
from dnsbalance.configuration.model import ClusterSettings, Settings
from dnsbalance.drains import Drain
from dnsbalance.health import events as health_events

log = logging.getLogger(__name__)


def encode(drain: Drain) -> bytes:
    return json.dumps({k: v for k, v in drain.to_json().items() if k != "target"}, sort_keys=True).encode()


def parse(entries: list[tuple[str, bytes]], prefix: str) -> tuple[dict[str, Drain], list[str]]:
    """etcd's drains by target, pure; the values that are not drains, with why."""
    found: dict[str, Drain] = {}
    ignored: list[str] = []
    for key, value in entries:
        where = layout.split(prefix, key)
        if where is None or where[0] != layout.DRAINS:
            continue
        try:
            data = json.loads(value)
            text = json.dumps({"drains": {where[1]: data}})
            found.update(operator_drains.parse(text))
        except (ValueError, TypeError) as exc:
            ignored.append(f"{key[len(prefix):][:80]}: {exc}")
    return found, ignored


def publish(settings: Settings, drain: Drain | None, target: str) -> int | None:
    """For the command: put the drain (None: delete it) in etcd. None when done, else an exit code after
    saying why (nothing is changed then, here or anywhere)."""
    cluster = settings.cluster
    assert cluster is not None
    link = EtcdLink(cluster, TIMEOUT)
    key = layout.drain_key(cluster.prefix, target)
    try:
        if drain is None:
            link.delete(key)
        else:
            link.put(key, encode(drain))
    except EtcdDown as exc:
        print(f"not {'undrained' if drain is None else 'drained'}: cluster: etcd cannot be reached ({exc}); a drain "
              "goes through etcd so that every name server applies it. Nothing was changed.", file=sys.stderr)
        return 1
    finally:
        link.close()
    print(f"cluster: {'undrain' if drain is None else 'drain'} of {target} written to etcd ({key}): every name "
          "server of the cluster follows it within a second")
    return None


class DrainFollower(Follower):
    """On a daemon thread of its own: etcd's drains into this instance's drains file, as soon as the watch brings
    them (`wake`), else by a read of etcd every FALLBACK seconds."""

    log = log
    failure = "cluster: following etcd's drains failed; trying again"

    def __init__(self, settings: ClusterSettings, path: Path, operations: Path,
                 watched: Watched = lambda: None, written: Callable[[], None] = lambda: None) -> None:
        """`watched`: the prefix as a streaming watch has it (None: read etcd); `written`: called (on this thread)
        after the drains file changed, so the server looks at it now rather than at its next half-second look."""
        super().__init__(settings, watched, "dnsbalance-cluster-drains")
        self.written = written
        self.path = path
        self.operations = operations
        self.seen: Mapping[str, Drain] | None = None  # etcd's drains at the last look
        self.reported: set[str] = set()  # bad values already logged

    def look(self) -> None:
        self.once(time.time())

    def once(self, now: float) -> None:
        prefix = self.settings.prefix
        watched = self.watched()
        try:
            if watched is not None:
                found, ignored = parse(watched, prefix)
            elif not self.read_due():
                return
            else:
                found, ignored = parse(self.link.get_prefix(prefix + layout.DRAINS), prefix)
        except EtcdDown as exc:
            # worded apart from member.py's "etcd unreachable", which is said once per outage
            self.lost(exc, "cluster: drains not followed, no answer from etcd (%s); the drains last seen stay in "
                           "force")
            return
        self.back("cluster: drains followed from etcd again")
        for problem in ignored:
            if problem not in self.reported:  # once, not at every look
                log.warning("cluster: ignored %s%s", prefix, problem)
        self.reported = set(ignored)
        for name, drain in found.items():
            if not drain.active(now):  # ran out: out of etcd (any instance may do it; twice is harmless)
                try:
                    self.link.delete(layout.drain_key(prefix, name))
                except EtcdDown:
                    pass
        if self.seen is not None and dict(found) == dict(self.seen):
            return  # etcd unchanged: the local file may have pruned what ran out, and keeps it so
        self.seen = found
        changed: list[tuple[str, Drain | None, Drain | None]] = []

        def follow(local: dict[str, Drain]) -> dict[str, Drain]:
            for name in sorted({*local, *found}):
                if local.get(name) != found.get(name):
                    changed.append((name, local.get(name), found.get(name)))
            return dict(found)

        try:
            operator_drains.change(self.path, follow)
        except (OSError, operator_drains.BadDrains) as exc:
            log.warning("cluster: cannot write etcd's drains to %s: %s", self.path, exc)
            self.seen = None  # try again at the next read
            return
        self.written()
        for name, before, after in changed:  # what this instance learnt from another (its own are logged already)
            if after is not None and after.active(now):
                event = health_events.Event(now, name, False, f"{after.describe()} (through the cluster)",
                                            health_events.Kind.DRAIN, after.by, after.until)
            elif after is None and before is not None and before.active(now):
                event = health_events.Event(now, name, True, f"undrained through the cluster (was "
                                            f"{before.describe()})", health_events.Kind.UNDRAIN, "cluster")
            else:
                continue
            health_events.note(self.operations, event)
