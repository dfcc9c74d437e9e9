"""The consensus of the live vantage points, pure: a target is down when `down_quorum` of the instances that
observed it (this one included) saw it down. Live means its vote is in etcd: leases decide, not clocks.

`majority`: more than half of the voters; `all`: every voter; a number N: N voters, or every voter while fewer
than N are live (a quorum that cannot be met would keep a dead mirror in for ever).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from dnsbalance.cluster.vote import Vote
from dnsbalance.health.observations import External, Mode


@dataclass(frozen=True)
class Decision:
    up: bool
    down: tuple[str, ...]  # the instances that saw it down
    voters: int  # live instances that observed it
    needed: int  # down votes that take it out

    def describe(self) -> str:
        seen = f"{len(self.down)} of {self.voters} vantage points see it down, {self.needed} needed"
        return f"{seen} ({', '.join(self.down)})" if self.down else seen


def needed(voters: int, down_quorum: int | str) -> int:
    if down_quorum == "all":
        return voters
    if down_quorum == "majority":
        return voters // 2 + 1
    return max(1, min(int(down_quorum), voters))


def decide(votes: Sequence[Vote], down_quorum: int | str, of: str = "seen") -> Mapping[str, Decision]:
    """Per target, from every vote that observed it. `of`: "seen" decides on the raw observations, "out" on
    what each instance serves without (a starting instance's view of the cluster)."""
    keys: set[str] = set()
    for vote in votes:
        keys |= vote.up | vote.down
    decisions = {}
    for key in sorted(keys):
        voters = [v for v in votes if v.sees(key) is not None]
        if of == "out":
            down = tuple(v.instance for v in voters if key in v.out)
        else:
            down = tuple(v.instance for v in voters if v.sees(key) is False)
        need = needed(len(voters), down_quorum)
        decisions[key] = Decision(len(down) < need, down, len(voters), need)
    return MappingProxyType(decisions)


def externals(decisions: Mapping[str, Decision], known: Iterable[str]) -> tuple[External, ...]:
    """The decisions on this configuration's targets, as observations at the health door."""
    return tuple(External(key, decisions[key].up, Mode.CONSENSUS, "cluster", decisions[key].describe())
                 for key in known if key in decisions)
