"""Operators' drains shared by every name server (`PREFIX drains/TARGET`, no lease: a drain lasts until undrained or
its `until`). `dnsbalance drain` publishes to etcd first and then writes its own state folder; every server
follows etcd's drains into its own state folder's drains file, and from there into its tables as any drain
(process/draining.py). So each instance keeps applying the last drains it saw while etcd is unreachable, and after
a restart.

How a server learns of them: through the watch that already streams the whole prefix for the votes
(watch.py into board.py): the watch's news wakes the follower, which reads the drains off the board, with no
request of its own. Only while no watch streams (it is down or being opened again, `cluster.watch: false`, or
health checks off) does the follower read etcd's `drains/` keys itself, every FALLBACK seconds, each read bounded
by TIMEOUT.

A drain that ran out is taken out of etcd by whichever instance sees it first (a delete: harmless twice).
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dnsbalance import drains as operator_drains
from dnsbalance.cluster import layout
from dnsbalance.cluster.etcd import EtcdDown, EtcdLink
from dnsbalance.configuration.model import ClusterSettings, Settings
from dnsbalance.drains import Drain
from dnsbalance.health import events as health_events

log = logging.getLogger(__name__)
TICK = 1.0  # seconds between looks at the drains (the board's, no request, while a watch streams): expiries
FALLBACK = 1.0  # seconds between reads of etcd's drains while no watch streams
TIMEOUT = 2.0  # seconds per etcd request
Watched = Callable[[], "list[tuple[str, bytes]] | None"]  # the prefix as a streaming watch has it; None: no watch


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


class DrainFollower:
    """On a daemon thread of its own: etcd's drains into this instance's drains file, as soon as the watch brings
    them (`wake`), else by a read of etcd every FALLBACK seconds."""

    def __init__(self, settings: ClusterSettings, path: Path, operations: Path,
                 watched: Watched = lambda: None, written: Callable[[], None] = lambda: None) -> None:
        """`watched`: the prefix as a streaming watch has it (None: read etcd); `written`: called (on this thread)
        after the drains file changed, so the server looks at it now rather than at its next half-second look."""
        self.settings = settings
        self.written = written
        self.path = path
        self.operations = operations
        self.watched = watched
        self.link = EtcdLink(settings, TIMEOUT)
        self.stopping = threading.Event()
        self.news = threading.Event()  # set by the watch's thread after each change under the prefix
        self.seen: Mapping[str, Drain] | None = None  # etcd's drains at the last look
        self.down: str | None = None
        self.reported: set[str] = set()  # bad values already logged
        self.read_at = 0.0  # monotonic time of the last read of etcd (fallback)
        self.reads = 0  # reads of etcd by this follower (none while a watch streams)
        self.thread = threading.Thread(target=self._loop, name="dnsbalance-cluster-drains", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wake(self) -> None:
        """News under the prefix (from any thread): look now."""
        self.news.set()

    def stop(self) -> None:
        self.stopping.set()
        self.news.set()
        self.link.close()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.once(time.time())
            except Exception:  # noqa: BLE001  # a bug must not end the following: logged, tried again
                log.exception("cluster: following etcd's drains failed; trying again")
            self.news.wait(TICK)
            self.news.clear()

    def once(self, now: float) -> None:
        prefix = self.settings.prefix
        watched = self.watched()
        try:
            if watched is not None:
                found, ignored = parse(watched, prefix)
            elif time.monotonic() - self.read_at < FALLBACK:
                return  # woken between two fallback reads: the next one is soon enough
            else:
                self.read_at = time.monotonic()
                self.reads += 1
                found, ignored = parse(self.link.get_prefix(prefix + layout.DRAINS), prefix)
        except EtcdDown as exc:
            if self.down is None:
                # worded apart from member.py's "etcd unreachable", which is said once per outage
                log.warning("cluster: drains not followed, no answer from etcd (%s); the drains last seen stay in "
                            "force", exc)
            self.down = str(exc)
            return
        if self.down is not None:
            log.info("cluster: drains followed from etcd again")
            self.down = None
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
