"""The values under the prefix (votes, push references, drains) as last known, pure: fed by the cycle's full
reads and by the watch's events, which arrive on different threads and in any order. etcd's revisions order them:
a key keeps the value of the highest revision seen, a deletion (a lease that ran out) is remembered as a tombstone
so that an older read cannot bring the value back, and a full read at revision R drops what it no longer holds as
of R.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    revision: int  # etcd's mod revision of the value (of the deletion, for a tombstone)
    value: bytes | None  # None: deleted


class Board:
    """Thread-safe: the watch thread writes, the event loop reads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, Entry] = {}
        self.revision = 0  # the newest revision a read or an event has shown
        self.read_at = 0  # the revision of the newest full read: an event up to it is already in
        self.changes = 0  # moves at every change of a value: the reader's cheap "anything new?"

    def read(self, revision: int, found: list[tuple[str, bytes, int]]) -> bool:
        """A full read of the folder at `revision`: (key, value, mod revision) of every key. True if it changed
        a value."""
        with self.lock:
            changed = False
            held = {key for key, _, _ in found}
            for key, value, modified in found:
                changed |= self._take(key, Entry(modified, value))
            for key in [k for k, e in self.entries.items() if k not in held and e.revision <= revision]:
                changed |= self.entries.pop(key).value is not None
            self.revision = max(self.revision, revision)
            self.read_at = max(self.read_at, revision)
            self.changes += changed
            return changed

    def event(self, key: str, value: bytes | None, revision: int) -> bool:
        """One watch event: a put (value) or a delete (None) at `revision`. True if it changed a value."""
        with self.lock:
            if revision <= self.read_at:
                return False
            changed = self._take(key, Entry(revision, value))
            self.revision = max(self.revision, revision)
            self.changes += changed
            return changed

    def _take(self, key: str, entry: Entry) -> bool:
        held = self.entries.get(key)
        if held is not None and held.revision >= entry.revision:
            return False  # older news than what is held
        self.entries[key] = entry
        return held is None and entry.value is not None or held is not None and held.value != entry.value

    def values(self) -> list[tuple[str, bytes]]:
        """(key, value) of every live key, in key order."""
        with self.lock:
            return sorted((k, e.value) for k, e in self.entries.items() if e.value is not None)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.changes += 1
