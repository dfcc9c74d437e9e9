"""What a draw draws from: one region's usable entries for one owner name and type; and what the table builder
records about the rest (the entries it left out and why, the tables it tried)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dnsbalance.configuration.model import Region
from dnsbalance.health.view import Status


@dataclass(frozen=True)
class Candidate:
    """One mirror as a draw sees it (its weight, its addresses of one family), or one relay's service
    as an SRV record shows it (weight, port, tier)."""

    name: str
    weight: int
    addresses: tuple[str, ...]
    port: int = 0
    tier: int = 0


@dataclass(frozen=True)
class Pool:
    """What one (region, owner name, type) draws from."""

    region: Region
    candidates: tuple[Candidate, ...]
    fail_open: bool = False  # nothing was usable: these are the configured entries, health ignored

    @property
    def weights(self) -> tuple[int, ...]:
        return tuple(c.weight for c in self.candidates)


class Judgement(Enum):
    """How the table builder judged one health key (a mirror for an archive, a relay's service), in the
    words the status page shows; `status` is what a draw makes of it."""

    UP = "up"
    SYNCING = "syncing"
    DOWN = "down"
    PENDING = "pending"
    OPERATOR_UP = "operator up"
    OPERATOR_DOWN = "operator down"
    DRAINED = "drained"  # `dnsbalance drain`: out of every answer, whatever the health checks say
    HEALTH_OFF = "health off"
    NOT_PROBED = "not probed"

    @property
    def status(self) -> Status:
        return _STATUS.get(self, Status.UP)  # the operator's up, health off and not probed: nothing to wait for


_STATUS = {Judgement.SYNCING: Status.SYNCING, Judgement.DOWN: Status.DOWN, Judgement.PENDING: Status.PENDING,
           Judgement.OPERATOR_DOWN: Status.DOWN, Judgement.DRAINED: Status.DOWN}


class Why(Enum):
    """Why the builder did not draw from an entry of a pool."""

    DRAINED = "drained"  # priority 10000
    OPERATOR_DOWN = "operator down"  # state: down in mirrors.yaml
    OPERATOR_DRAIN = "drained by operator"  # `dnsbalance drain` (drains.json): never served, as priority 10000
    DOWN = "down"  # the health checks' verdict (their reason is in the health state, under `key`)
    PENDING = "pending"  # not judged yet, while judged entries serve the name somewhere
    SYNCING = "syncing"  # mid-sync, avoided while the region can do without it
    ADDRESS_DOWN = "address down"  # one address of a served mirror failed its own probe (target `mirror@address`)
    PARTIAL = "partial"  # its ftpsync trace lacks an architecture the name requires (`require:`), key `mirror+arch`


@dataclass(frozen=True, slots=True)
class LeftOut:
    """One configured entry a pool does not draw from, and why. One object per (target, key, why), shared by
    every pool that leaves it out: a big table leaves the same down mirror out of thousands of pools."""

    target: str
    why: Why
    key: str  # the health key the entry is judged by ("jaist", "jaist/debian-security", "tokyo1/stun")


class Tried(Enum):
    """What one table on a region's way did for an owner name and type."""

    SERVED = "served"  # its usable entries answer
    FAIL_OPEN = "fail open"  # nothing usable on the whole way: its configured entries answer regardless
    UNUSABLE = "nothing usable"  # it lists the name, but no entry can answer now
    UNLISTED = "not listed"  # it does not list the name (or has no entry that can answer the type)
    NO_TABLE = "no table"


Link = tuple[Region, Tried]
# The tables a region's clients go through for one name and type, in order, up to the one that answers;
# recorded only where the region's own table does not serve the name itself.
Chain = tuple[Link, ...]
