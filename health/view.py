"""The health side's one promise to the table builder: which mirrors and relays are usable now."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class HealthView:
    """Usable or not, per mirror or relay name. A name the view has never judged counts as usable,
    so that until the first probe cycle completes every configured entry is served."""

    usable: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))

    def is_usable(self, name: str) -> bool:
        return self.usable.get(name, True)


ALL_USABLE = HealthView()
