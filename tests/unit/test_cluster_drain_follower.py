"""The cluster's drains follower (dnsbalance/cluster/drains.py) in process: with a streaming watch it takes the
drains off the watch's board and asks etcd nothing; without one it reads etcd, and an etcd that cannot be reached
(a closed loopback port here) leaves the drains last seen in force."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from dnsbalance import drains as operator_drains
from dnsbalance.cluster import drains as cluster_drains
from dnsbalance.cluster import layout
from dnsbalance.configuration.model import ClusterSettings
from dnsbalance.drains import Drain

PREFIX = "/dnsbalance/cdn.example.org/"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on leaving: connections are refused at once


def test_drains_come_from_the_watch_without_a_read_and_stay_when_etcd_is_away(tmp_path: Path) -> None:
    settings = ClusterSettings((f"http://127.0.0.1:{closed_port()}",), "ns1", PREFIX)
    drain = Drain("jp1", "network work", "carol", time.time())
    board: list[tuple[str, bytes]] | None = [
        (layout.vote_key(PREFIX, "ns2"), b"{}"),  # a vote: not a drain, not a problem
        (layout.drain_key(PREFIX, "jp1"), cluster_drains.encode(drain)),
    ]
    written: list[bool] = []
    follower = cluster_drains.DrainFollower(settings, tmp_path / "drains.json", tmp_path / "operations.jsonl",
                                            watched=lambda: board, written=lambda: written.append(True))
    try:
        follower.once(time.time())
        assert follower.reads == 0 and follower.down is None  # etcd (unreachable) was never asked
        assert operator_drains.read(tmp_path / "drains.json") == {"jp1": drain}
        assert written == [True] and "through the cluster" in (tmp_path / "operations.jsonl").read_text()
        follower.once(time.time())
        assert written == [True]  # nothing new: the file is not written again
        board = None  # the watch is down: a read of etcd, which fails; the drains last seen stay
        follower.once(time.time())
        assert follower.reads == 1 and follower.down is not None
        assert operator_drains.read(tmp_path / "drains.json") == {"jp1": drain}
        follower.once(time.time())
        assert follower.reads == 1  # within FALLBACK of the last read: no second request
    finally:
        follower.stop()
