"""The cluster followers' shared thread (dnsbalance/cluster/follower.py), in process: a stop returns at once while a
read of etcd hangs (an "etcd" on loopback that takes the connection and never answers), a look that raises is
logged under the follower's own logger and the following goes on, and an outage is logged once each way."""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from dnsbalance.cluster.etcd import EtcdDown
from dnsbalance.cluster.follower import TICK, TIMEOUT, Follower, Watched
from dnsbalance.configuration.model import ClusterSettings

PREFIX = "/dnsbalance/cdn.example.org/"
log = logging.getLogger("tests.follower")


class Reader(Follower):
    """Reads etcd's prefix at each due look; the first `failing` looks raise."""

    log = log
    failure = "test: a look failed; trying again"

    def __init__(self, settings: ClusterSettings, watched: Watched = lambda: None, failing: int = 0) -> None:
        super().__init__(settings, watched, "test-follower")
        self.failing = failing
        self.looks = 0
        self.reading = threading.Event()  # set just before a read of etcd

    def look(self) -> None:
        self.looks += 1
        if self.looks <= self.failing:
            raise RuntimeError("a bug")
        if self.watched() is not None or not self.read_due():
            return
        self.reading.set()
        try:
            self.link.get_prefix(PREFIX)
        except EtcdDown as exc:
            self.lost(exc, "test: etcd away (%s)")
            return
        self.back("test: etcd back")


@pytest.fixture
def silent_etcd() -> Iterator[str]:
    """An endpoint whose kernel completes the connection (listen backlog) but that never reads nor answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_stop_returns_at_once_while_a_read_of_etcd_hangs(silent_etcd: str) -> None:
    follower = Reader(ClusterSettings((silent_etcd,), "ns1", PREFIX))
    follower.start()
    try:
        assert follower.thread.name == "test-follower" and follower.thread.daemon
        assert follower.reading.wait(5)
        time.sleep(0.2)  # the request is sent and waits for an answer that never comes
        assert follower.thread.is_alive() and follower.reads == 1
        began = time.monotonic()
        follower.stop()
        assert time.monotonic() - began < 0.5  # never waits for etcd (the read is bounded by TIMEOUT anyway)
    finally:
        follower.stop()
    follower.thread.join(TIMEOUT + 3)
    assert not follower.thread.is_alive()  # the thread ends on its own after the read in flight


def test_a_failing_look_is_logged_by_its_follower_and_the_following_goes_on(silent_etcd: str,
        caplog: pytest.LogCaptureFixture) -> None:
    follower = Reader(ClusterSettings((silent_etcd,), "ns1", PREFIX), watched=lambda: [], failing=1)
    with caplog.at_level(logging.ERROR, logger="tests.follower"):
        follower.start()
        try:
            began = time.monotonic()
            while follower.looks < 3 and time.monotonic() - began < 5:
                follower.wake()  # woken: looks again without waiting for the TICK
                time.sleep(0.02)
            assert follower.looks >= 3 and time.monotonic() - began < TICK
        finally:
            follower.stop()
    failures = [r for r in caplog.records if r.getMessage() == Reader.failure]
    assert len(failures) == 1 and failures[0].name == "tests.follower" and failures[0].exc_info is not None
    assert follower.reads == 0  # a streaming watch (an empty board here): etcd is never read


def test_an_outage_is_logged_once_each_way(silent_etcd: str, caplog: pytest.LogCaptureFixture) -> None:
    follower = Reader(ClusterSettings((silent_etcd,), "ns1", PREFIX))
    try:
        with caplog.at_level(logging.INFO, logger="tests.follower"):
            follower.back("test: etcd back")  # never lost: nothing to say
            for problem in ("refused", "timed out"):
                follower.lost(EtcdDown(problem), "test: etcd away (%s)")
            assert follower.down == "timed out"
            follower.back("test: etcd back")
            follower.back("test: etcd back")
        assert [r.getMessage() for r in caplog.records] == ["test: etcd away (refused)", "test: etcd back"]
        assert follower.down is None
    finally:
        follower.stop()
