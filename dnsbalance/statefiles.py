"""The state folder, every file of it named here, and written so that a reader never sees half of one."""
from __future__ import annotations

import logging
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
    def external(self) -> Path:
        """Observations from outside the prober (an operator's or a script's), read at every health cycle:
        `TARGET: up|down [final]` lines (health/external.py)."""
        return self.root / "external-health"

    @property
    def table(self) -> Path:
        """The active table as text, for the operator (as DNS Balance wrote its `addr` file)."""
        return self.root / "table.txt"

    @property
    def serving(self) -> Path:
        """The generation and inputs digest of the table in service, so `explain` builds the same table."""
        return self.root / "serving.json"

    @property
    def in_service(self) -> Path:
        """The generation every answering process answers from, and the drains it applies: written once the
        answerers of a new generation are all in service (what `dnsbalance drain` waits for)."""
        return self.root / "in-service.json"

    @property
    def signing(self) -> Path:
        """The signing state of the table in service (key tag, earliest expiry, signatures made; never a key),
        for `dnsbalance dnssec status`."""
        return self.root / "dnssec.json"

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
    def events(self) -> Path:
        """The health event log (health/events.py): every up/down change, bounded in size."""
        return self.root / "events.jsonl"

    @property
    def drains(self) -> Path:
        """Operators' drains (dnsbalance/drains.py): mirrors and relays out of every answer, written by
        `dnsbalance drain`/`undrain` (or the cluster), read by the running server within a second."""
        return self.root / "drains.json"

    @property
    def operations(self) -> Path:
        """The operators' event log (health/events.py): drains, undrains, reloads, configurations put in
        service; bounded as the health event log is, and kept apart from it so that a burst of reloads never
        pushes a week of health history out."""
        return self.root / "operations.jsonl"

    @property
    def pid(self) -> Path:
        return self.root / "dnsbalance.pid"

    @property
    def lock(self) -> Path:
        """Held (flock) by the running server for its whole life: one instance per state folder."""
        return self.root / "dnsbalance.lock"

    @property
    def reload_request(self) -> Path:
        """Who asked for the reload being sent (`dnsbalance reload` writes it before its SIGHUP), so that the
        operators' event log names them; a bare SIGHUP leaves none."""
        return self.root / "reload-request.json"

    @property
    def instance(self) -> Path:
        """Who the running server is and where it answers (pid, zone, configuration folder, DNS and status
        addresses as bound), written once it serves: `dnsbalance status` finds the status page through it."""
        return self.root / "instance.json"

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


class RepeatedWrite:
    """A write repeated on a timer (the query counters, every 5 seconds) that fails the same way each time is
    logged when it starts failing or fails differently, and once when it works again: not 17,280 lines a day."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what  # "query counters to /var/lib/dnsbalance/counters/main.json"
        self.failure: str | None = None  # the error being repeated, None while writes work

    def failed(self, exc: OSError) -> None:
        failure = str(exc)
        if failure != self.failure:
            self.log.warning("cannot save %s: %s (logged again only when this changes or stops)", self.what, failure)
        self.failure = failure

    def worked(self) -> None:
        if self.failure is not None:
            self.log.warning("saved %s again", self.what)
        self.failure = None
