"""How a configuration folder is read: each file as dnsbalance/files.py reads one (regular files only, never
more than MAX_FILE_BYTES), and a folder's files within a deadline.

A folder is read on a thread of its own that nobody waits for past READ_TIMEOUT, nor at all once the process
stops (a file system that does not answer hangs a read in the kernel, where no deadline reaches it).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dnsbalance.files import MAX_FILE_BYTES, Refused, kind_of, not_a_file, read_file  # noqa: F401 - re-exported

READ_TIMEOUT = 10.0  # seconds for reading every file of a folder (a local disk needs milliseconds)


class ReadTimeout(Exception):
    """A folder's files were not all read within the deadline; `path` is the one being read then."""

    def __init__(self, path: Path, seconds: float) -> None:
        super().__init__(f"{path}: not read within {seconds:g}s")
        self.path = path
        self.seconds = seconds


class Abandoned(Exception):
    """The process is stopping: nobody waits for the files any longer."""


Outcome = bytes | OSError


@dataclass
class ReadFiles:
    """A folder's configuration files as read once, each its bytes or why it was not read: the checks and
    the digest of a configuration see the same content. A path not among them is read when asked for."""

    directory: Path
    found: dict[Path, Outcome] = field(default_factory=dict)

    def read(self, path: Path) -> bytes:
        outcome = self.found.get(path)
        if outcome is None:
            return read_file(path)
        if isinstance(outcome, OSError):
            raise outcome
        return outcome

    def contents(self) -> dict[str, bytes]:
        """Relative path -> content of every file that was read."""
        return {str(path.relative_to(self.directory)): data for path, data in sorted(self.found.items())
                if isinstance(data, bytes)}


_stopping = threading.Event()


def stop_reading() -> None:
    """The process is stopping: a read under way is abandoned (Abandoned), none is waited for again."""
    _stopping.set()


def read_all(directory: Path, paths: list[Path], timeout: float = READ_TIMEOUT) -> ReadFiles:
    """Read `paths` on a thread of its own; ReadTimeout when they take longer than `timeout`, Abandoned when
    the process stops meanwhile. The thread is a daemon: one stuck in the kernel never holds up an exit."""
    files = ReadFiles(directory)
    done = threading.Event()
    current: list[Path] = [directory]

    def work() -> None:
        try:
            for path in paths:
                current[0] = path
                try:
                    files.found[path] = read_file(path)
                except OSError as exc:
                    files.found[path] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="configuration-read", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.wait(0.05):
        if _stopping.is_set():
            raise Abandoned()
        if time.monotonic() > deadline:
            raise ReadTimeout(current[0], timeout)
    return files
