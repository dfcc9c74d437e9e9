"""The state folder, every file of it named here, and written so that a reader never sees half of one."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateFolder:
    root: Path

    @property
    def health(self) -> Path:
        """Mirror and relay health, saved after every cycle by the probing process, read at start-up."""
        return self.root / "health.json"

    @property
    def table(self) -> Path:
        """The active table as text, for the operator (as DNS Balance wrote its `addr` file)."""
        return self.root / "table.txt"

    @property
    def serving(self) -> Path:
        """The generation and inputs digest of the table in service, so `explain` builds the same table."""
        return self.root / "serving.json"

    @property
    def served_config(self) -> Path:
        """A copy of the configuration files in service, written when another is adopted: `dnsbalance plan`
        compares the files on disk with it."""
        return self.root / "config-in-service.json"

    @property
    def geoip_dir(self) -> Path:
        """`dnsbalance geoip rebuild` writes the built-in database here (geo/locate.py rebuilt_database)."""
        return self.root / "geoip"

    @property
    def counters_dir(self) -> Path:
        return self.root / "counters"

    def counters(self, process: str | None = None) -> Path:
        """Query counters of one process ("main", "worker-0", ...)."""
        return self.counters_dir / f"{process or 'main'}.json"

    @property
    def pid(self) -> Path:
        return self.root / "dnsbalance.pid"

    @property
    def lock(self) -> Path:
        """Held (flock) by the running server for its whole life: one instance per state folder."""
        return self.root / "dnsbalance.lock"

    @property
    def reload_result(self) -> Path:
        """The outcome of the last reload (applied, or refused with the problems), for `dnsbalance reload`."""
        return self.root / "reload.json"


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: a crash mid-write leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
