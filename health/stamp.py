"""Upstream stamp (trace) files and freshness, pure.

A Debian trace file, as ftpsync and dak write it, starts with the `date -u` of the update, then key: value lines:

    Sat Nov 21 12:00:01 UTC 2026
    Date: Sat, 21 Nov 2026 12:00:01 +0000
    Archive serial: 2026112101
    ...
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_SERIAL = re.compile(r"^Archive serial:\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Stamp:
    serial: str | None = None
    date: datetime | None = None  # the first line, `date -u` format
    last_modified: datetime | None = None  # the HTTP header, when the body says nothing usable

    @property
    def is_trace(self) -> bool:
        """The body said something a trace file says: a serial or a `date -u` first line."""
        return self.serial is not None or self.date is not None

    def describe(self) -> str:
        if self.serial:
            return f"serial {self.serial}"
        if self.date:
            return self.date.strftime("%Y-%m-%d %H:%M:%S")
        if self.last_modified:
            return "modified " + self.last_modified.strftime("%Y-%m-%d %H:%M:%S")
        return "-"


def _first_line_date(line: str) -> datetime | None:
    text = " ".join(line.split())  # `date -u` pads single-digit days with a space
    for fmt in ("%a %b %d %H:%M:%S %Z %Y", "%a %d %b %H:%M:%S %Z %Y", "%a %b %d %H:%M:%S %Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_stamp(body: bytes, last_modified: str | None = None) -> Stamp:
    text = body.decode("utf-8", errors="replace")
    serial = _SERIAL.search(text)
    first = text.split("\n", 1)[0].strip()
    return Stamp(serial.group(1) if serial else None, _first_line_date(first) if first else None,
                 _http_date(last_modified))


@dataclass(frozen=True)
class Freshness:
    fresh: bool
    lag: float | None  # seconds behind the master, when it can be told
    reason: str


def serial_key(serial: str) -> tuple[int, str]:
    """Archive serials (YYYYMMDDNN) order as numbers; anything else sorts below every number."""
    return (int(serial), "") if serial.isdigit() else (0, serial)


_serial_key = serial_key


def looks_like_html(body: bytes, content_type: str | None = None) -> bool:
    """A soft-404 or index page where a trace or lock file should be."""
    if content_type and "html" in content_type.lower():
        return True
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml"))


def freshness(mirror: Stamp, master: Stamp, max_lag: float) -> Freshness:
    """Compare by `Archive serial:`, else the first-line date, else Last-Modified.

    A mirror ahead of the master counts as fresh: the master is read once at the start of the cycle,
    and a mirror may finish a sync after that read.
    """
    def by_time(a: datetime | None, b: datetime | None, what: str) -> Freshness | None:
        if a is None or b is None:
            return None
        lag = (b - a).total_seconds()
        if lag <= 0:
            return Freshness(True, 0.0, f"{what} ahead of master" if lag < 0 else f"{what} matches master")
        if lag <= max_lag:
            return Freshness(True, lag, f"{what} {lag:.0f}s behind master, within max_lag")
        return Freshness(False, lag, f"stale: {what} {lag:.0f}s behind master")

    if mirror.serial and master.serial:
        if mirror.serial == master.serial:
            return Freshness(True, 0.0, "serial matches master")
        if _serial_key(mirror.serial) > _serial_key(master.serial):
            return Freshness(True, 0.0, f"serial {mirror.serial} ahead of master {master.serial}")
        timed = by_time(mirror.date, master.date, "stamp")
        if timed is not None and max_lag > 0:
            return timed
        lag = timed.lag if timed else None
        return Freshness(False, lag, f"stale: serial {mirror.serial}, master has {master.serial}")
    for a, b, what in ((mirror.date, master.date, "stamp"), (mirror.last_modified, master.last_modified,
                                                            "Last-Modified")):
        timed = by_time(a, b, what)
        if timed is not None:
            return timed
    return Freshness(False, None, "stale: stamp has no serial, date or Last-Modified to compare with master")
