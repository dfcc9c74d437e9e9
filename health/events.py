"""The health event log: every up/down change of a mirror (per archive) or relay service, one JSON line each in
`state_dir/events.jsonl`, as mirrorbits' `logs` keeps them; and, in the same form, the operators' log
(`state_dir/operations.jsonl`): drains and undrains (who, why, until when), reloads (applied or refused) and the
configurations put in service, each with its `kind`.

Bounded: past MAX_BYTES the file is renamed `events.jsonl.1` (replacing the one before) and a new one started,
so the log never holds more than about twice MAX_BYTES. What changed is pure (`changes`); appending and reading
are the edges.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from dnsbalance.health.state import HealthState

log = logging.getLogger(__name__)
MAX_BYTES = 1 << 20  # per file; two files kept: about 14,000 events of ~150 bytes
LINE_LIMIT = 4096  # a line longer than this is not ours: skipped when reading
REASON_LIMIT = 400  # reasons are probe messages; a hostile mirror's text is cut


class Kind:
    """What an event records: a health verdict's change, or an operator's action."""

    HEALTH = "health"
    DRAIN = "drain"  # key: the mirror or relay drained; up False
    UNDRAIN = "undrain"  # key: the mirror or relay; up True; reason says by whom, or that the drain expired
    RELOAD = "reload"  # key "reload"; up: applied (False: refused, the reason holds the first error)
    CONFIGURATION = "configuration"  # key "configuration": another configuration in service (at start, reloads)


OPERATOR_KINDS = (Kind.DRAIN, Kind.UNDRAIN, Kind.RELOAD, Kind.CONFIGURATION)


@dataclass(frozen=True)
class Event:
    time: float  # unix time of the cycle that made the change (of the action, for an operator's)
    key: str  # the health key: `jaist`, `jaist/debian-security`, `tokyo1/stun`; an operator's: see Kind
    up: bool
    reason: str
    kind: str = Kind.HEALTH
    by: str = ""  # who did it (an operator's action)
    until: float | None = None  # a drain's end, when it has one
    generation: int | None = None  # the table generation in service after a reload
    digest: str | None = None  # the configuration's digest (reloads, configurations)

    @property
    def mirror(self) -> str:
        """The mirror (or relay) name, without the archive or service."""
        return self.key.partition("/")[0]

    @property
    def archive(self) -> str | None:
        """The archive (or relay service) of the key; None for a mirror's only archive."""
        return self.key.partition("/")[2] or None

    def to_json(self) -> dict[str, object]:
        found = {**asdict(self), "mirror": self.mirror, "archive": self.archive}
        if self.kind == Kind.HEALTH:  # health lines keep the form they had before operators' events
            for name in ("kind", "by", "until", "generation", "digest"):
                found.pop(name)
        return found

    @property
    def operator(self) -> bool:
        return self.kind != Kind.HEALTH


def changes(before: HealthState, after: HealthState) -> list[Event]:
    """The keys whose up/down differs from `before` (a first judgement counts: it starts the history)."""
    found = []
    for key, now in sorted(after.mirrors.items()):
        was = before.mirrors.get(key)
        if was is None or was.up != now.up:
            found.append(Event(now.since, key, now.up, now.reason[:REASON_LIMIT]))
    return found


def append(path: Path, events: Iterable[Event], limit: int = MAX_BYTES) -> None:
    """Add lines to the log, rotating it first when they would take it past `limit`."""
    text = "".join(json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in events)
    if not text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # the server and a command (drain, reload) may both append to the operators' log: the size check, the
    # rotation and the append happen under one lock, or two rotations at once would lose a whole file
    # opened read-only: a lock file made by a command run as root is still usable by the server's user
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(text) > limit:
            os.replace(path, rotated(path))
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    finally:
        os.close(lock)


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def record(before: HealthState, after: HealthState, path: Path) -> list[Event]:
    """Append what changed between two health states; a log that cannot be written is a warning, never a stop."""
    found = changes(before, after)
    try:
        append(path, found)
    except OSError as exc:
        log.warning("cannot append to the health event log %s: %s", path, exc)
    return found


def _parse(line: str) -> Event | None:
    if len(line) > LINE_LIMIT:
        return None
    try:
        data = json.loads(line)
        until, generation, digest = data.get("until"), data.get("generation"), data.get("digest")
        return Event(float(data["time"]), str(data["key"]), bool(data["up"]), str(data.get("reason", "")),
                     str(data.get("kind", Kind.HEALTH)), str(data.get("by", "")),
                     None if until is None else float(until), None if generation is None else int(generation),
                     None if digest is None else str(digest))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def note(path: Path, event: Event) -> None:
    """Append one operator's event; a log that cannot be written is a warning, never a stop."""
    try:
        append(path, [dataclasses.replace(event, reason=event.reason[:REASON_LIMIT])])
    except OSError as exc:
        log.warning("cannot append to the operators' event log %s: %s", path, exc)


def read_all(health: Path, operations: Path, since: float = 0.0) -> list[Event]:
    """Both logs in one, oldest first."""
    return sorted([*read(health, since), *read(operations, since)], key=lambda e: e.time)


def read(path: Path, since: float = 0.0) -> list[Event]:
    """Every event at or after `since`, oldest first, from the rotated file and the current one; lines that
    are not events (a hand edit, a torn write) are skipped."""
    found: list[Event] = []
    for part in (rotated(path), path):
        try:
            with open(part, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    event = _parse(line)
                    if event is not None and event.time >= since:
                        found.append(event)
        except OSError:
            continue
    found.sort(key=lambda e: e.time)
    return found


def matches(event: Event, name: str) -> bool:
    """`--mirror NAME`: the mirror (all its archives) or one exact key."""
    return event.mirror == name or event.key == name


class EventTail:
    """The event log as last read, read again only when a file of it changed (the status page asks often)."""

    def __init__(self) -> None:
        self.seen: tuple[object, ...] = ()
        self.events: list[Event] = []

    def __call__(self, path: Path) -> list[Event]:
        marks: list[tuple[str, int | None, int | None]] = []
        for part in (rotated(path), path):
            try:
                found = part.stat()
                marks.append((str(part), found.st_size, found.st_mtime_ns))
            except OSError:
                marks.append((str(part), None, None))
        if tuple(marks) != self.seen:
            self.events, self.seen = read(path), tuple(marks)
        return self.events
