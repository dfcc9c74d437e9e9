"""What the status page, status.json and /metrics show of the cluster: a value the member replaces after each
exchange with etcd (never a credential: endpoints are shown without user or password, which they cannot hold)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dnsbalance.cluster.consensus import Decision
from dnsbalance.cluster.vote import Vote


@dataclass(frozen=True)
class ClusterView:
    instance: str
    down_quorum: int | str
    digest: str  # of the configuration this instance serves (the part every name server shares)
    connected: bool | None = None  # None: not tried yet
    since: float = 0.0  # when `connected` last changed (unix time)
    problem: str = ""  # why etcd is not reachable, when it is not
    peers: tuple[Vote, ...] = ()  # the other live instances' votes, as last read
    mine: Vote | None = None  # this instance's vote, as last published
    decisions: Mapping[str, Decision] = field(default_factory=lambda: MappingProxyType({}))
    ignored: tuple[str, ...] = ()  # values in the prefix that were ignored at the last read, and why
    unknown: tuple[str, ...] = ()  # names that wrote a vote but are not in cluster.instances
    watching: bool | None = None  # the watch on the others' votes: streaming, lost, or None (off or not yet)
    watch_events: int = 0  # changes the watch brought since start
    requests: int = 0  # to etcd since start
    sent: int = 0  # bytes
    received: int = 0

    @property
    def configurations(self) -> Mapping[str, tuple[str, ...]]:
        """Configuration digest -> the instances serving it (more than one digest: drift)."""
        found: dict[str, list[str]] = {}
        for vote in ((self.mine,) if self.mine else ()) + self.peers:
            found.setdefault(vote.digest, []).append(vote.instance)
        if self.mine is None:
            found.setdefault(self.digest, []).append(self.instance)
        return MappingProxyType({d: tuple(sorted(names)) for d, names in sorted(found.items())})

    @property
    def drift(self) -> bool:
        return len(self.configurations) > 1

    def as_json(self) -> dict[str, object]:
        votes = ((self.mine,) if self.mine else ()) + self.peers
        return {
            "instance": self.instance, "connected": self.connected, "since": self.since, "problem": self.problem,
            "down_quorum": self.down_quorum, "peers": [v.instance for v in self.peers],
            "configurations": {d: list(n) for d, n in self.configurations.items()}, "drift": self.drift,
            "targets": {key: {"up": d.up, "down_votes": list(d.down), "voters": d.voters, "needed": d.needed,
                              "seen": {v.instance: v.sees(key) for v in votes}}
                        for key, d in self.decisions.items()},
            "ignored": list(self.ignored), "unknown_writers": list(self.unknown),
            "watch": {"streaming": self.watching, "events": self.watch_events},
            "etcd": {"requests": self.requests, "sent_bytes": self.sent, "received_bytes": self.received},
        }
