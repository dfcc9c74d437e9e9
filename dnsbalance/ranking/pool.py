"""What a draw draws from: one region's usable entries for one owner name and type."""
from __future__ import annotations

from dataclasses import dataclass

from dnsbalance.configuration.model import Region


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
