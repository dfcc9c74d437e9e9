"""How a configuration file is read: regular files only, never more than MAX_FILE_BYTES, and a folder's files
within a deadline.

A file's size on disk says nothing for what is not a regular file: /dev/zero reads forever with a size of 0, a
FIFO blocks its reader until a writer comes (and a thread blocked in open() cannot be stopped, so the
process could not be either). So a path is stat()ed first and anything but a regular file is refused without
being opened; the open itself is non-blocking and the opened descriptor is checked again (the path may have
been replaced between the two), and no read takes more than the limit. A folder is read on a thread of its
own that nobody waits for past READ_TIMEOUT, nor at all once the process stops (a file system that does not
answer hangs a read in the kernel, where no deadline reaches it).
"""
from __future__ import annotations

import errno
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# Far above any real configuration (the benchmark's 249 x 50 x 8 table files are ~10 KB each, its default
# table ~2,600 nodes), far below what hurts the server: a file is read whole and turned into objects.
MAX_FILE_BYTES = 16 << 20
READ_TIMEOUT = 10.0  # seconds for reading every file of a folder (a local disk needs milliseconds)
CHUNK = 1 << 20


class Refused(OSError):
    """A file not read, and why: `message` is the problem as `check` reports it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ReadTimeout(Exception):
    """A folder's files were not all read within the deadline; `path` is the one being read then."""

    def __init__(self, path: Path, seconds: float) -> None:
        super().__init__(f"{path}: not read within {seconds:g}s")
        self.path = path
        self.seconds = seconds


class Abandoned(Exception):
    """The process is stopping: nobody waits for the files any longer."""


def kind_of(mode: int) -> str | None:
    """What a file of this mode is, as a message says it; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def not_a_file(path: Path) -> str | None:
    """Why a path that should be a configuration file cannot be read as one ("missing" when there is
    nothing there), or None when it is a regular file. Never opens it."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "a dangling symbolic link" if os.path.islink(path) else "missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENOTDIR:
            return "missing"
        return f"cannot be examined: {exc.strerror}"
    return kind_of(info.st_mode)


def read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, if it is a regular file of at most `limit` bytes. FileNotFoundError when there is
    nothing there; Refused for anything else that is not read; OSError as reading fails."""
    reason = not_a_file(path)
    if reason == "missing":
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if reason is not None:
        raise Refused(f"not read: {reason}")
    # O_NONBLOCK: should a FIFO have taken the file's place since the stat, open() returns at once
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        reason = kind_of(os.fstat(descriptor).st_mode)
        if reason is not None:
            raise Refused(f"not read: {reason}")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(descriptor, min(CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(descriptor)
    if size > limit:
        raise Refused(f"larger than {limit >> 20} MiB; refusing the file")
    return b"".join(chunks)


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
