"""The door for observations from outside the prober, and its one source so far: a file in the state folder that
an operator or a script writes, read at every health cycle (gdnsd's extfile). Other instances of this server
(etcd) will be another source of the same `External` values.

    # state/external-health: TARGET: up|down [final]  [# why]
    jp3: down                    # one more probe result: fall/rise apply, and every probe must agree on up
    jaist/debian-security: down final   # final: this state while the line is there, whatever the probes say
    tokyo1: up final             # a mirror or relay name stands for all its archives or services

A line that cannot be read is logged with its line number and ignored (the others still count); a file that is
not a regular file, or larger than MAX_BYTES, is logged and ignored as a whole. Never an exception.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dnsbalance.health.observations import External, Mode

log = logging.getLogger(__name__)
MAX_BYTES = 256 * 1024  # about 10,000 lines: far more than a fleet has targets


class Source(Protocol):
    def read(self) -> tuple[External, ...]:
        """The observations this source holds now; never raises."""


@dataclass(frozen=True)
class Parsed:
    observations: tuple[External, ...]
    problems: tuple[str, ...]  # `line N: what is wrong`


def parse(text: str, source: str) -> Parsed:
    """The file's lines as observations, pure; `source` names it in each observation (`NAME:LINE`)."""
    found, problems = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        line, _, note = raw.partition("#")
        if not line.strip():
            continue
        target, colon, said = line.partition(":")
        words = said.split()
        target = target.strip()
        if not colon or not target or any(c.isspace() for c in target):
            problems.append(f"line {number}: expected `TARGET: up|down [final]`, got {raw.strip()[:80]!r}")
            continue
        if not words or words[0] not in ("up", "down") or len(words) > 2 or \
                (len(words) == 2 and words[1] not in (Mode.FINAL.value, Mode.RULES.value)):
            problems.append(f"line {number}: {target}: expected `up` or `down`, then optionally `final`; got "
                            f"{said.strip()[:80]!r}")
            continue
        mode = Mode(words[1]) if len(words) == 2 else Mode.RULES
        found.append(External(target, words[0] == "up", mode, f"{source}:{number}", note.strip()[:200]))
    return Parsed(tuple(found), tuple(problems))


class ExternalFile:
    """The file, read again at every cycle; what is wrong with it is logged once per change of the file."""

    def __init__(self, path: Path, shown: str | None = None) -> None:
        self.path = path
        self.shown = shown or str(path)
        self.reported: object = None  # what was last logged about the file, so a bad file is not logged every cycle

    def read(self) -> tuple[External, ...]:
        try:
            text, mark = self._text()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                self._report(("error", str(exc)), f"cannot read {self.shown}: {exc.strerror or exc}; ignored")
            return ()
        except ValueError as exc:
            self._report(("bad", str(exc)), f"{self.shown}: {exc}; ignored")
            return ()
        parsed = parse(text, self.shown)
        if parsed.problems:
            self._report(mark, "; ".join(f"{self.shown} {p}" for p in parsed.problems) + " (those lines ignored)")
        else:
            self.reported = None
        return parsed.observations

    def _text(self) -> tuple[str, object]:
        # non-blocking and checked before reading: a FIFO or a device there must not wedge the cycle
        handle = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            found = os.fstat(handle)
            if not stat.S_ISREG(found.st_mode):
                raise ValueError("not a regular file")
            data = os.read(handle, MAX_BYTES + 1)
        finally:
            os.close(handle)
        if len(data) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        return data.decode("utf-8", errors="replace"), (found.st_size, found.st_mtime_ns, found.st_ino)

    def _report(self, mark: object, message: str) -> None:
        if mark != self.reported:
            self.reported = mark
            log.warning("%s", message)
