"""What the cluster's followers share (drains.py: the operators' drains; keystore.py: the DNSSEC keys): a daemon
thread that looks as soon as the watch's news wakes it (`wake`), else once a TICK; each look takes the values off the
watch's board while it streams (watch.py, no request), else reads etcd itself, at most once per FALLBACK seconds
however often it is woken, each read bounded by TIMEOUT. An outage of etcd is logged once each way.

A stop never waits for etcd: it closes the link and does not join the thread, which ends after its read in flight.
"""
from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from dnsbalance.cluster.etcd import EtcdDown, EtcdLink
from dnsbalance.configuration.model import ClusterSettings

TICK = 1.0  # seconds between looks when nothing wakes the follower (a drain's expiry is seen within one)
FALLBACK = 1.0  # seconds between reads of etcd while no watch streams
TIMEOUT = 2.0  # seconds per etcd request
Watched = Callable[[], "list[tuple[str, bytes]] | None"]  # the prefix as a streaming watch has it; None: no watch


class Follower(ABC):
    """The thread and its pacing; a subclass says what one look does (`look`) and, through `log` and `failure`,
    how its lines read (its own module's logger, so they keep their names)."""

    log: ClassVar[logging.Logger]
    failure: ClassVar[str]  # logged with the traceback when a look raises

    def __init__(self, settings: ClusterSettings, watched: Watched, thread: str) -> None:
        self.settings = settings
        self.watched = watched
        self.link = EtcdLink(settings, TIMEOUT)
        self.stopping = threading.Event()
        self.news = threading.Event()  # set by the watch's thread after each change under the prefix
        self.down: str | None = None  # etcd's last error while it does not answer
        self.read_at = 0.0  # monotonic time of the last read of etcd (fallback)
        self.reads = 0  # reads of etcd by this follower (none while a watch streams)
        self.thread = threading.Thread(target=self._loop, name=thread, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wake(self) -> None:
        """News under the prefix (from any thread): look now."""
        self.news.set()

    def stop(self) -> None:
        self.stopping.set()
        self.news.set()
        self.link.close()

    @abstractmethod
    def look(self) -> None:
        """One look, on the thread."""

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.look()
            except Exception:  # noqa: BLE001  # a bug must not end the following: logged, tried again
                self.log.exception(self.failure)
            self.news.wait(TICK)
            self.news.clear()

    def read_due(self) -> bool:
        """No watch streams: True when this look reads etcd (counted), False when woken within FALLBACK of the last
        read (the next one is soon enough)."""
        if time.monotonic() - self.read_at < FALLBACK:
            return False
        self.read_at = time.monotonic()
        self.reads += 1
        return True

    def lost(self, exc: EtcdDown, warning: str) -> None:
        """etcd did not answer: `warning` (with the error for %s) once per outage, not at every look."""
        if self.down is None:
            self.log.warning(warning, exc)
        self.down = str(exc)

    def back(self, message: str) -> None:
        """etcd answered: said once, after an outage."""
        if self.down is not None:
            self.log.info(message)
            self.down = None
