"""Freshness per archive through master pushes, pure: (probe results, the master's stamp, the previous
reference, now) -> verdicts and the next reference.

The reference serial is the newest serial that a quorum of the answering mirrors carry, never newer than the
master's: a push does not make every mirror stale at once, and the first mirror to finish does not take
everything. When the reference advances, mirrors still on the previous one keep serving for `grace` seconds;
past it, or more than one push behind, they are out. A prober that did not see the push (no previous
reference) gives no grace.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dnsbalance.configuration.model import Archive
from dnsbalance.health.fetch import Fetched
from dnsbalance.health.stamp import Stamp, freshness, looks_like_html, parse_stamp, serial_key
from dnsbalance.health.verdict import StampVerdict, Verdict


@dataclass(frozen=True)
class Reference:
    """What an archive's mirrors are held to, kept from cycle to cycle (in health.json)."""

    serial: str | None = None
    previous: str | None = None  # the reference before `serial`: mirrors still on it are in grace
    since: float = 0.0  # unix time `serial` became the reference; the grace runs from here
    master: str | None = None  # the master's serial when last read
    master_since: float = 0.0  # when this prober first saw the master publish it (the trace's date only at a first start)


@dataclass(frozen=True)
class Probe:
    """What the I/O gave for one (mirror, archive): its stamp file and its ftpsync lock file."""

    key: str
    stamp: Fetched
    lock: Fetched | None = None  # None: no lock file is looked for
    lock_name: str = ""


@dataclass(frozen=True)
class Judged:
    verdicts: tuple[Verdict, ...]
    reference: Reference | None
    note: str  # what became of the master read and the reference, for logs and `probe`


def locked(probe: Probe) -> bool:
    """ftpsync's Archive-Update-in-Progress file is served (a soft-404 page does not count)."""
    lock = probe.lock
    return lock is not None and lock.ok and not looks_like_html(lock.body, lock.content_type)


CLOCK_SKEW = 300.0  # a master trace dated further ahead than this is a warning (its clock, or ours)
STALE_MASTER = 86400.0  # Debian pushes four times a day: a master trace older than a day is a warning


def master_date_warning(stamp: Stamp, now: float) -> str:
    """A master trace dated in the future or far past: said, never used as a clock."""
    if stamp.date is None:
        return ""
    age = now - stamp.date.timestamp()
    if age < -CLOCK_SKEW:
        return f"; WARNING: the master's trace is dated {-age:.0f}s in the future (a clock is wrong)"
    if age > STALE_MASTER:
        return (f"; WARNING: the master's trace is dated {age / 3600:.1f}h ago (a master that is itself a "
                "lagging mirror, or a stopped one?)")
    return ""


def master_stamp(master: Fetched | None) -> tuple[Stamp | None, str]:
    if master is None:
        return None, "no master configured: liveness only"
    if not master.ok:
        return None, f"master unreadable ({master.error or f'HTTP {master.status}'})"
    stamp = parse_stamp(master.body, master.last_modified)
    if not stamp.is_trace:
        what = "an HTML page" if looks_like_html(master.body, master.content_type) else "no trace file"
        return None, f"master served {what} at its stamp path"
    return stamp, f"master {stamp.describe()}"


def quorum_serial(serials: list[str], master: str, quorum: float) -> str | None:
    """The newest serial, not newer than the master's, that at least `quorum` of `serials` carry or pass."""
    if not serials:
        return None
    need = max(1, math.ceil(quorum * len(serials) - 1e-9))
    top = serial_key(master)
    for serial in sorted({master, *(s for s in serials if serial_key(s) <= top)}, key=serial_key, reverse=True):
        if sum(serial_key(s) >= serial_key(serial) for s in serials) >= need:
            return serial
    return None


def next_reference(previous: Reference | None, serials: list[str], master: Stamp, quorum: float,
                   grace: float, now: float) -> Reference:
    """The reference advances to the newest serial a quorum carries, or to the master's own once it has been
    published for `grace` seconds (a push no quorum follows does not keep stuck mirrors fresh for ever)."""
    top = master.serial or ""
    # The grace runs from when this prober first saw the serial (kept in the health state across restarts),
    # never from the date in the master's trace: the master an operator can reach is often itself a mirror
    # that gets the trace late, and a grace already spent on arrival is the push flood grace exists to stop.
    # Only a prober with no reference at all (a first start, no saved state) has nothing of its own: no grace
    # is given then, and the trace's date (never later than now) only says whether a serial no quorum carries
    # is taken at once.
    if previous is not None and previous.master == top:
        published = previous.master_since
    elif previous is None or previous.serial is None:
        published = min(now, master.date.timestamp()) if master.date else now
    else:
        published = now
    if now - published >= grace:
        found = top
    elif serials:
        found = quorum_serial(serials, top, quorum) or top
    else:
        found = previous.serial if previous is not None and previous.serial else top
    if previous is None or previous.serial is None or serial_key(previous.serial) > serial_key(top):
        return Reference(found, None, now, top, published)  # first sight (or the master went back): no push seen
    if serial_key(found) > serial_key(previous.serial):
        # taken on the master's word after `grace`: the mirrors behind have had their grace already
        since = published if found == top and now - published >= grace else now
        return Reference(found, previous.serial, since, top, published)
    return Reference(previous.serial, previous.previous, previous.since, top, published)


def _lag(stamp: Stamp, master: Stamp | None) -> float | None:
    if master is None or master.date is None or stamp.date is None:
        return None
    return max(0.0, (master.date - stamp.date).total_seconds())


def _against(stamp: Stamp, ref: Reference, master: Stamp | None, archive: Archive,
             now: float) -> tuple[bool, str]:
    serial, target = stamp.serial, ref.serial or ""
    at_master = ref.serial == ref.master
    what = "master" if at_master else "reference"
    if serial is None:  # a date-only trace against a master with a serial: by date, as before serials
        if master is not None and stamp.date is not None:
            fresh = freshness(stamp, Stamp(None, master.date), archive.max_lag)
            return fresh.fresh, fresh.reason
        return False, "stale: trace has no Archive serial"
    if serial == target:
        return True, f"serial matches {what}"
    if serial_key(serial) > serial_key(target):
        return True, (f"serial {serial} ahead of {what} {target}" if at_master else
                      f"serial {serial} ahead of reference {target} (master {ref.master}, not yet on a quorum)")
    lag = _lag(stamp, master)
    if archive.max_lag > 0 and lag is not None and lag <= archive.max_lag:
        return True, f"stamp {lag:.0f}s behind master, within max_lag"
    if ref.previous is not None and serial_key(serial) >= serial_key(ref.previous):
        left = ref.since + archive.grace - now
        if left > 0:
            return True, f"serial {serial}, one push behind reference {target}: in grace for {left:.0f}s more"
        return False, (f"stale: serial {serial}, reference {target} for {now - ref.since:.0f}s (grace "
                       f"{archive.grace:g}s)")
    if ref.previous is not None:
        return False, f"stale: serial {serial}, more than one push behind reference {target}"
    return False, f"stale: serial {serial}, {what} has {target}"


def judge_archive(archive: Archive, master: Fetched | None, probes: list[Probe], previous: Reference | None,
                  now: float) -> Judged:
    """Every mirror of one archive, judged against the archive's reference."""
    stamp, note = master_stamp(master)
    why = note
    parsed = [(p, parse_stamp(p.stamp.body, p.stamp.last_modified) if p.stamp.ok else None) for p in probes]
    ref: Reference | None = None
    if stamp is not None and stamp.serial:
        # ftpsync fetches the upstream trace in stage 1, before the indices: a locked mirror's serial
        # says what it is syncing to, not what it serves, so it does not count toward the quorum
        serials = [s.serial for p, s in parsed if s is not None and s.serial and not locked(p)]
        ref = next_reference(previous, serials, stamp, archive.quorum, archive.grace, now)
        note += master_date_warning(stamp, now)
        if ref.serial != stamp.serial:
            note += f", reference {ref.serial} (carried by a quorum; the master's is not yet)"
    elif stamp is None and previous is not None and previous.serial:
        ref = previous  # the master cannot be read: hold mirrors to what a quorum carried before
        note += f": judged against reference serial {previous.serial} from an earlier cycle"
    elif stamp is None and master is not None:
        note += ": freshness not checked this cycle"

    verdicts = []
    for probe, mine in parsed:
        fetched = probe.stamp
        base: dict[str, Any] = {"url": fetched.url, "status": fetched.status, "latency": fetched.latency,
                                "archive": archive.name}
        if mine is None:
            error = fetched.error or f"HTTP {fetched.status}"
            cause = "not-trace" if fetched.oversize else \
                "http" if fetched.status is not None and fetched.error is None else "unreachable"
            verdicts.append(StampVerdict(probe.key, False, error, cause=cause, **base))
            continue
        syncing = locked(probe)
        sync_note = f"; syncing ({probe.lock_name} present)" if syncing else ""
        if (ref is not None or (stamp is not None and stamp.serial)) and not mine.is_trace:
            what = "an HTML page" if looks_like_html(fetched.body, fetched.content_type) else \
                f"{len(fetched.body)} bytes without serial or date"
            verdicts.append(StampVerdict(probe.key, False, f"not a trace file: {what}", stamp=mine, cause="not-trace",
                                    **base))
            continue
        if ref is not None:
            ok, reason = _against(mine, ref, stamp, archive, now)
        elif stamp is not None:  # a master with a date but no serial: dates, as before serials
            fresh = freshness(mine, stamp, archive.max_lag)
            ok, reason = fresh.fresh, fresh.reason
        else:
            ok, reason = True, f"alive ({why})" if master is None else f"alive, freshness not checked ({why})"
        verdicts.append(StampVerdict(probe.key, ok, reason + sync_note, stamp=mine, lag=_lag(mine, stamp),
                                syncing=syncing and ok, cause="" if ok else "stale", **base))
    return Judged(tuple(verdicts), ref, note)
