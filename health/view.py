"""The health side's one promise to the table builder: which mirrors and relays are usable now."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType


class Status(Enum):
    UP = "up"
    SYNCING = "syncing"  # up, mid-sync (ftpsync's lock): avoided while its region can carry its share
    DOWN = "down"
    PENDING = "pending"  # never judged: not answered until its first verdict, unless nothing else is usable


@dataclass(frozen=True)
class HealthView:
    """Usable or not, per health key (a mirror, `mirror/archive`, or `relay/service`)."""

    usable: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    syncing: frozenset[str] = frozenset()

    def status(self, key: str) -> Status:
        judged = self.usable.get(key)
        if judged is None:
            return Status.PENDING
        if not judged:
            return Status.DOWN
        return Status.SYNCING if key in self.syncing else Status.UP

    def is_usable(self, name: str) -> bool:
        """Up, syncing or not judged yet (the table builder decides what a pending entry gets)."""
        return self.usable.get(name, True)


ALL_USABLE = HealthView()
