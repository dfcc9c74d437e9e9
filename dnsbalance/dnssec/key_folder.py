"""The key folder (`state_dir/keys/` by default) read and written as a whole key set (key_files.py): every file
mode 0600, each replaced by a rename so that a reader sees the old file or the new one, never half of one, and the
signing key present at every moment. With `cluster:`, the folder is this name server's copy of the cluster's keys,
and a marker (`cluster-copy.json`: the digest of the key files as copied) tells such a copy from keys put here by
hand. The marker holds no key.

`lock` orders, inside one process, the cluster's key follower writing a copy and a table build reading it.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

from dnsbalance.dnssec.key_files import KEY_NAMES, NAMES, KeyFiles, digest
from dnsbalance.dnssec.keys import KEY_FILE, RETIRING_FILE, KeyProblem

MARKER = "cluster-copy.json"
lock = threading.Lock()
# the order a new key set is written in: the retiring key before the signing key is replaced, so that a crash
# between two files leaves every key that signed or is published somewhere in the folder
ORDER = (RETIRING_FILE, KEY_FILE, *(n for n in NAMES if n not in (RETIRING_FILE, KEY_FILE)))


def read(directory: Path) -> dict[str, bytes]:
    """The key set's files present in the folder (none: {}); KeyProblem for one that cannot be read."""
    found = {}
    for name in NAMES:
        try:
            found[name] = (directory / name).read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise KeyProblem(f"cannot read {directory / name}: {exc.strerror}") from None
    return found


def _write_file(path: Path, data: bytes) -> None:
    # a temporary name of its own (mode 0600 from creation): the server's follower and a command may write the
    # same copy at once, each file then whole from one of them
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write(directory: Path, before: KeyFiles, after: KeyFiles) -> None:
    """Make the folder hold `after` (it held `before`): changed files replaced, then the ones gone deleted."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in ORDER:
        if name in after and before.get(name) != after[name]:
            _write_file(directory / name, bytes(after[name]))
    for name in NAMES:
        if name in before and name not in after:
            (directory / name).unlink(missing_ok=True)


def is_copy(directory: Path, files: KeyFiles) -> bool:
    """Whether the folder's key files are, unchanged, a copy this server took of the cluster's."""
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("digest") == digest(files) and any(n in files for n in KEY_NAMES)


def write_copy(directory: Path, after: KeyFiles, tags: list[int], revision: int) -> None:
    """The cluster's key set into the folder, marked as a copy (under `lock`)."""
    with lock:
        before = read(directory)
        write(directory, before, after)
        marker = {"digest": digest(after), "tags": tags, "revision": revision, "copied": round(time.time(), 3)}
        _write_file(directory / MARKER, (json.dumps(marker) + "\n").encode())


def set_aside(directory: Path, now: float) -> Path | None:
    """Moves the folder's key files into directory/replaced-TIME/ (kept, never deleted); None when it had none."""
    present = [name for name in (*NAMES, MARKER) if (directory / name).exists()]
    if not present:
        return None
    aside = directory / time.strftime("replaced-%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside.mkdir(mode=0o700, exist_ok=True)
    for name in present:
        os.replace(directory / name, aside / name)
    return aside
