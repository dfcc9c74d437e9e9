"""What ftpsync publishes about each (mirror, archive): its `Archive-Update-in-Progress-<name>` file at the
root (a mirror showing it is mid-sync; read by the mirror stamp check's judgement), and, with `health.traces`
(or a `require:`), the mirror's own name from `project/trace/_hierarchy` and the architectures its own trace
lists. ftpsync names the lock after MIRRORNAME (the machine's name by default), not after the URL's host: the
name is learned from what the mirror publishes, unless `lock:` in mirrors.yaml says it.

Its judgement gives the architecture verdicts (health/requirements.py) and notes a lock name never confirmed."""
from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from urllib.parse import urlsplit

from dnsbalance.configuration.model import Config, Mirror, mirror_key
from dnsbalance.health.checks.base import Judged, Probing, Target
from dnsbalance.health.checks.master_stamp import stamp_url
from dnsbalance.health.checks.roots import carried
from dnsbalance.health.fetch import Fetched, fetch
from dnsbalance.health.observations import Observation, Observed
from dnsbalance.health.reference import Reference
from dnsbalance.health.requirements import arch_key, architectures_of, reads_traces, required
from dnsbalance.health.settings import PolicySettings
from dnsbalance.health.verdict import Verdict

NAME = "ftpsync-lock"
LOCK_PREFIX = "Archive-Update-in-Progress-"
HIERARCHY = "project/trace/_hierarchy"
TRACE_DIR = "project/trace/"
_MIRROR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
GUESSES_NAMED = 3  # past this many mirrors whose lock name is a guess, one warning for them all


class Named(StrEnum):
    """Where the lock name a read used came from."""

    CONFIGURED = "lock: in mirrors.yaml"
    LEARNED = "project/trace/_hierarchy"
    GUESSED = "the URL's host (never confirmed by the mirror)"


def lock_name(mirror: Mirror, base: str) -> str:
    """ftpsync's `Archive-Update-in-Progress-<MIRRORNAME>`; MIRRORNAME defaults to the host's name, guessed
    here from the URL the mirror is probed at until the mirror says it. "" when the mirror says `lock: off`."""
    if mirror.lock is not None:
        return mirror.lock
    return f"{LOCK_PREFIX}{urlsplit(base).hostname or ''}"


@dataclass(frozen=True)
class LockTarget(Target):
    url: str  # key: the (mirror, archive) health key; url: the archive's base URL at the mirror
    file: str  # the lock file as configured or guessed; "" for none
    named: Named
    learn: bool  # read _hierarchy and the mirror's own trace first
    require: tuple[str, ...] = ()  # architectures some name served from this (mirror, archive) requires


@dataclass(frozen=True)
class LockRead(Observation):
    file: str  # the lock file read ("" for none)
    fetched: Fetched | None  # None: no lock file looked for
    named: Named = Named.GUESSED
    mirror_name: str | None = None  # MIRRORNAME, as the mirror's _hierarchy says it
    architectures: tuple[str, ...] | None = None  # from the mirror's own trace; None: not read
    trace_note: str = ""  # why the name or the architectures are not known
    require: tuple[str, ...] = ()


def own_line(hierarchy: bytes) -> tuple[str, str] | None:
    """(trace file, MIRRORNAME) from ftpsync's _hierarchy, whose last line is the mirror's own
    (`<trace file> <MIRRORNAME> <host> <upstream>`, after its upstreams' lines)."""
    lines = [line.split() for line in hierarchy.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines or len(lines[-1]) < 2:
        return None
    trace, name = lines[-1][0], lines[-1][1]
    if not _MIRROR_NAME.fullmatch(trace) or not _MIRROR_NAME.fullmatch(name):
        return None
    return trace, name


class FtpsyncLock:
    name = NAME

    def targets(self, config: Config) -> Sequence[LockTarget]:
        learn = reads_traces(config)
        found = []
        for archive, mirror, url in carried(config):
            file = lock_name(mirror, url)
            named = Named.CONFIGURED if mirror.lock is not None else Named.GUESSED
            learns = learn and not url.startswith("rsync://")
            if file or learns:
                found.append(LockTarget(mirror_key(mirror.name, archive), url, file, named, learns,
                                        required(config, mirror, archive.name)))
        return found

    async def observe(self, target: LockTarget, probing: Probing) -> Observation:
        deadline = time.monotonic() + probing.timeout  # the reads together take one probe's time

        def left() -> float:
            return max(0.05, deadline - time.monotonic())

        file, named = target.file, target.named
        mirror_name: str | None = None
        architectures: tuple[str, ...] | None = None
        note = "" if target.learn else not_learned(target.url)
        if target.learn:
            hierarchy = await fetch(probing.client, stamp_url(target.url, HIERARCHY), left())
            own = own_line(hierarchy.body) if hierarchy.ok else None
            if own is None:
                note = f"no {HIERARCHY} ({hierarchy.error or 'no ftpsync line'})"
            else:
                trace, mirror_name = own
                if named is Named.GUESSED:
                    file, named = f"{LOCK_PREFIX}{mirror_name}", Named.LEARNED
                read = await fetch(probing.client, stamp_url(target.url, TRACE_DIR + trace), left())
                architectures = architectures_of(read.body) if read.ok else None
                if architectures is None:
                    note = f"{TRACE_DIR}{trace}: " + (read.error or "no Architectures: line")
        fetched = await fetch(probing.client, stamp_url(target.url, file), left()) if file else None
        return LockRead(target.key, file, fetched, named, mirror_name, architectures, note, target.require)

    def judge(self, observed: Observed, settings: PolicySettings, previous: Mapping[str, Reference],
              now: float) -> Judged:
        verdicts: list[Verdict] = []
        notes: list[str] = []
        guessed: list[LockRead] = []
        learned: dict[str, str] = {}
        for read in observed.of(NAME).values():
            if not isinstance(read, LockRead):
                continue
            if read.mirror_name:
                learned[read.target] = read.mirror_name
            if read.named is Named.GUESSED and read.trace_note:
                guessed.append(read)
            elif read.named is Named.CONFIGURED and read.mirror_name and \
                    read.file and read.file != f"{LOCK_PREFIX}{read.mirror_name}":
                notes.append(f"{read.target}: WARNING: lock: {read.file}, but the mirror's {HIERARCHY} names it "
                             f"{read.mirror_name}")
            verdicts += carries(read)
        return Judged(tuple(verdicts), notes=(*guesses(guessed), *notes), learned=MappingProxyType(learned))


def guesses(guessed: list[LockRead]) -> list[str]:
    """The lock names never confirmed: one warning each for a few, one for all of a fleet that publishes none."""
    if len(guessed) <= GUESSES_NAMED:
        return [f"{read.target}: WARNING: lock name {read.file or '-'} guessed from the URL's host, never confirmed "
                f"({read.trace_note}); set lock: in mirrors.yaml" for read in guessed]
    names = ", ".join(read.target for read in guessed[:GUESSES_NAMED])
    return [f"WARNING: lock names of {len(guessed)} mirrors guessed from their URLs' hosts, never confirmed "
            f"({names} and {len(guessed) - GUESSES_NAMED} more: no {HIERARCHY} read); set lock: in mirrors.yaml"]


def not_learned(url: str) -> str:
    """Why a mirror's name is not read from what it publishes."""
    return "not read over rsync" if url.startswith("rsync://") else "health.traces is off"


def carries(read: LockRead) -> list[Verdict]:
    """One verdict per required architecture: out only when the mirror's own trace lists others and not it
    (a trace that cannot be read says nothing either way, and the stamp check judges the mirror's life)."""
    found = []
    for architecture in read.require:
        key = arch_key(read.target, architecture)
        if read.architectures is None:
            found.append(Verdict(key, True, f"architectures unknown ({read.trace_note or 'not read'})"))
        elif architecture in read.architectures:
            found.append(Verdict(key, True, f"carries {architecture}"))
        else:
            found.append(Verdict(key, False, f"partial mirror: its trace lists {' '.join(read.architectures)}, "
                                            f"not {architecture}", cause="partial"))
    return found


def lock_read(observed: Observed, key: str) -> LockRead | None:
    found = observed.of(NAME).get(key)
    return found if isinstance(found, LockRead) else None


CHECK = FtpsyncLock()
