"""Operators' drains (`dnsbalance drain MIRROR`): a mirror or relay taken out of every answer without an edit of
the configuration, kept in `state_dir/drains.json`, optionally until a time. An operator's decision, kept apart
from health verdicts (health/): the table builder leaves a drained target out as it leaves out priority 10000,
and every view says "drained", by whom and why, never a health reason.

The values and the file's form are pure; reading and changing the file are the edges. The file is replaced
atomically, and changed under a lock (`drains.lock`), so that two commands at once never lose a drain.
"""
from __future__ import annotations

import fcntl
import json
import os
import pwd
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType

from dnsbalance.statefiles import write_atomically

MAX_BYTES = 1 << 20  # a drains file past this is not ours
REASON_LIMIT = 400


class BadDrains(ValueError):
    """The drains file cannot be read as drains (a hand edit, another program's file)."""


@dataclass(frozen=True)
class Drain:
    target: str  # a mirror or relay name (every archive or relay service of it)
    reason: str
    by: str  # who drained it: the user from the environment (sudo's too) or the uid
    since: float  # unix time
    until: float | None = None  # unix time it ends by itself; None: until `dnsbalance undrain`

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        """'drained by alice: kernel upgrade (until 2026-12-03 14:00 UTC)', for every view."""
        why = f": {self.reason}" if self.reason else ""
        until = f" (until {clock(self.until)})" if self.until is not None else ""
        return f"drained by {self.by}{why}{until}"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


Drains = Mapping[str, Drain]
NONE: Drains = MappingProxyType({})


MAX_SECONDS = 10 * 366 * 86400  # a drain's --for at most ten years: beyond, `until` is no date a clock can show


def clock(moment: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))
    except (OverflowError, ValueError, OSError):  # no real drain's time; a damaged file's may be
        return f"{moment:g} (not a date)"


def parse(text: str) -> dict[str, Drain]:
    """The file's drains by target; BadDrains when it is not such a file."""
    try:
        data = json.loads(text)
        found = {}
        for target, fields in dict(data["drains"]).items():
            until = fields.get("until")
            since, until = float(fields["since"]), None if until is None else float(until)
            if not (0 <= since < 1e11 and (until is None or since <= until <= since + MAX_SECONDS)):
                raise ValueError(f"{target}: since {since:g} / until {until} out of range")
            found[str(target)] = Drain(str(target), str(fields.get("reason", ""))[:REASON_LIMIT],
                                       str(fields.get("by", "?")), since, until)
        return found
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadDrains(f"not a drains file ({type(exc).__name__}: {exc})") from None


def render(drains: Drains) -> str:
    return json.dumps({"drains": {name: {k: v for k, v in drain.to_json().items() if k != "target"}
                                  for name, drain in sorted(drains.items())}}, indent=1) + "\n"


def active(drains: Drains, now: float) -> Drains:
    """The drains in force at `now` (an expired one is over even before anyone removes it from the file)."""
    return MappingProxyType({name: d for name, d in drains.items() if d.active(now)})


def read(path: Path) -> dict[str, Drain]:
    """The drains in the file (none when there is no file); OSError or BadDrains when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    if len(data) > MAX_BYTES:
        raise BadDrains(f"larger than {MAX_BYTES} bytes")
    return parse(data.decode("utf-8", errors="replace"))


def change(path: Path, work: Callable[[dict[str, Drain]], dict[str, Drain]]) -> dict[str, Drain]:
    """Read, change and replace the file under its lock; returns what was written. A file that cannot be
    read is not replaced (BadDrains): a drain someone wrote by hand is never lost to a command."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # read-only is enough to lock: a lock file root made (`sudo dnsbalance drain`) still serves the server's user
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = read(path)
        after = work(dict(before))
        if after != before:
            write_atomically(path, render(after))
        return after
    finally:
        os.close(lock)


def hand_over(paths: list[Path]) -> None:
    """Run as root (`sudo dnsbalance drain`), give the files written to the state folder's owner, so that the
    server's own user can still replace and append to them. Best effort."""
    if os.geteuid() != 0:
        return
    for path in paths:
        try:
            owner = path.parent.stat()
            if path.exists():
                os.chown(path, owner.st_uid, owner.st_gid)
        except OSError:
            pass


def who() -> str:
    """The operator: sudo's user when run under sudo, else the login name, else the uid's name (or number)."""
    for variable in ("SUDO_USER", "USER", "LOGNAME"):
        name = os.environ.get(variable, "").strip()
        if name and name.isprintable() and len(name) <= 64:
            return name
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@dataclass
class DrainWatch:
    """The file as the server last read it, read again when it changed (size, mtime, inode): the server asks
    every half second, so a drain is in service within about a second with no signal to send."""

    path: Path
    mark: object = None
    drains: Mapping[str, Drain] = field(default_factory=lambda: NONE)
    problem: str | None = None  # why the file was last unreadable (the drains read before it stay)

    def poll(self) -> bool:
        """Read the file if it changed; True when its drains did."""
        try:
            found = os.stat(self.path)
            mark: object = (found.st_size, found.st_mtime_ns, found.st_ino)
        except FileNotFoundError:
            mark = None
        except OSError as exc:
            mark = ("error", str(exc))
        if mark == self.mark:
            return False
        try:
            drains = read(self.path)
        except (OSError, BadDrains) as exc:  # read again at the next poll: a chown or chmod changes no mark
            self.problem = str(exc)
            return False
        self.mark = mark  # only once read: a file unreadable for a moment is not skipped until it changes
        self.problem = None
        if drains == dict(self.drains):
            return False
        self.drains = MappingProxyType(drains)
        return True
