"""The other instances' votes as they arrive: an etcd watch on the prefix, on a thread of its own, feeding the
board (board.py) and telling the member after each change, so a majority that forms between this instance's
cycles is applied within a moment, not at its next cycle. The operators' drains under the same prefix reach
every instance the same way (drains.py reads them off the board when the watch's news wakes it).

Never on the event loop and never waited for: a watch that cannot be opened, is cut, or stays silent for longer
than a healthy cluster can (every instance writes once per interval) is opened again, after a full read, with a
growing pause; the cycle's own read goes on meanwhile. Lost and back are logged once each way.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable

import requests
from etcd3gw.utils import _decode
from urllib3.exceptions import ReadTimeoutError

from dnsbalance.cluster.board import Board
from dnsbalance.cluster.etcd import EtcdDown, EtcdLink, Traffic
from dnsbalance.configuration.model import ClusterSettings

log = logging.getLogger(__name__)


class Quiet(Exception):
    """The stream said nothing for the whole read timeout: opened again from where it was, no full read."""


class Watcher:
    def __init__(self, settings: ClusterSettings, interval: float, timeout: float, board: Board,
                 news: Callable[[], None], traffic: Traffic | None = None) -> None:
        self.settings = settings
        self.interval = interval
        self.board = board
        self.news = news  # called on the watch thread after each change of the board
        self.link = EtcdLink(settings, timeout, traffic)  # its own sessions: requests' are not for two threads
        # every live instance writes once per interval: silence for this long means a stream that is gone
        self.read_timeout = interval * 1.5 + 2 * timeout
        self.stopped = threading.Event()
        self.streaming: bool | None = None  # None: not yet opened
        self.since = 0.0  # when `streaming` last changed
        self.events = 0  # changes seen since start
        self.revision = 0  # the newest revision the stream has delivered: where a quiet reopen starts
        self.response: requests.Response | None = None
        self.thread = threading.Thread(target=self._run, name="dnsbalance-etcd-watch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        pause = 0.2
        full = True
        while not self.stopped.is_set():
            try:
                self._follow(full)
            except Quiet:
                full = False
                continue
            except (EtcdDown, requests.RequestException, ValueError, KeyError, TypeError) as exc:
                if self.stopped.is_set():
                    break
                self.link.forget_tokens()
                self._lost(str(exc) if isinstance(exc, EtcdDown) else type(exc).__name__)
                full = True
                self.stopped.wait(pause)
                pause = min(pause * 2, max(1.0, self.interval))
                continue
            pause = 0.2

    def _follow(self, full: bool) -> None:
        prefix = self.settings.prefix
        if full or not self.revision:
            revision, found = self.link.range(prefix)
            self.revision = revision
            if self.board.read(revision, found):
                self.news()
        response, lines = self.link.watch(prefix, self.revision + 1, self.read_timeout)
        self.response = response
        try:
            for line in lines:
                if self.stopped.is_set():
                    return
                if line.strip():
                    self._take(json.loads(line))
        except requests.ConnectionError as exc:
            if exc.args and isinstance(exc.args[0], ReadTimeoutError) and self.streaming:
                raise Quiet from None
            raise
        finally:
            self.response = None
            response.close()
        raise EtcdDown("watch: the stream ended")

    def _take(self, message: dict) -> None:  # type: ignore[type-arg]
        if "error" in message:
            raise EtcdDown(f"watch: {str(message['error'].get('message', ''))[:120]}")
        result = message["result"]
        if result.get("created"):
            self._back()
            return
        if result.get("canceled"):
            raise EtcdDown(f"watch cancelled by etcd: {str(result.get('cancel_reason', ''))[:120]}")
        changed = False
        for event in result.get("events", []):
            kv = event["kv"]
            key = _decode(kv["key"]).decode("utf-8", "replace")
            revision = int(kv["mod_revision"])
            value = None if event.get("type") == "DELETE" else _decode(kv.get("value", ""))
            changed |= self.board.event(key, value, revision)
            self.revision = max(self.revision, revision)
        if changed:
            self.events += 1
            self.news()

    def _back(self) -> None:
        if self.streaming is not True:
            log.info("cluster: watching etcd%s for the other instances' votes", "" if self.streaming is None
                     else " again")
            self.streaming, self.since = True, time.time()

    def _lost(self, problem: str) -> None:
        if self.streaming is not False:
            log.warning("cluster: watch on etcd %s (%s); the others' votes are read at each cycle until it is back",
                        "not opened" if self.streaming is None else "lost", problem)
            self.streaming, self.since = False, time.time()

    def stop(self) -> None:
        """Ends the thread without waiting for it: a blocked read is cut by shutting its socket."""
        self.stopped.set()
        response = self.response
        if response is not None:
            try:
                raw = socket.fromfd(response.raw._fp.fileno(), socket.AF_INET, socket.SOCK_STREAM)  # noqa: SLF001
                raw.shutdown(socket.SHUT_RDWR)
                raw.close()
            except (AttributeError, OSError, ValueError):
                pass
        self.link.close()
