"""Reading a file that someone else may have put there: regular files only, never opened otherwise, and never
more than a limit.

A file's size on disk says nothing for what is not a regular file: /dev/zero reads forever with a size of 0, a
FIFO blocks its reader until a writer comes (and a thread blocked in open() cannot be stopped, so the
process could not be either). So a path is stat()ed first and anything but a regular file is refused without
being opened; the open itself is non-blocking and the opened descriptor is checked again (the path may have
been replaced between the two), and no read takes more than the limit. Configuration files, GeoIP databases
and imported DNS Balance files are all read so.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

CHUNK = 1 << 20
# Far above any real configuration (the benchmark's 249 x 50 x 8 table files are ~10 KB each, its default
# table ~2,600 nodes), far below what hurts the server: a file is read whole and turned into objects.
MAX_FILE_BYTES = 16 << 20


class Refused(OSError):
    """A file not read, and why: `message` is the problem as `check` reports it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


def open_regular(path: Path) -> int:
    """A descriptor of the file, opened only if it is a regular file. FileNotFoundError when there is
    nothing there; Refused (nothing opened, or closed again) for anything else."""
    reason = not_a_file(path)
    if reason == "missing":
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if reason is not None:
        raise Refused(f"not read: {reason}")
    # O_NONBLOCK: should a FIFO have taken the file's place since the stat, open() returns at once
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    reason = kind_of(os.fstat(descriptor).st_mode)
    if reason is not None:
        os.close(descriptor)
        raise Refused(f"not read: {reason}")
    return descriptor


def read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, if it is a regular file of at most `limit` bytes. FileNotFoundError when there is
    nothing there; Refused for anything else that is not read; OSError as reading fails."""
    descriptor = open_regular(path)
    try:
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
