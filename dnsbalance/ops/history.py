"""A target's history as spans of time, pure: health up/down from the health event log, the stretches an operator
had it drained from the operators' log, and the views the status page offers (6 h, 24 h, 7 d).

What the logs keep on disk bounds how far back a view can see: each log is at most two files of
health/events.py MAX_BYTES (1 MiB each), about 14,000 health transitions (a week of a 1,000-mirror fleet in which
every mirror goes down and back once a day) and as many operators' actions. A stretch older than the oldest line
kept is drawn as unknown.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from dnsbalance.drains import Drain
from dnsbalance.ops.status_document import Span
from dnsbalance.health.events import Event, Kind

# The page's views: name -> seconds (the first is the default)
VIEWS = {"6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 86400}
DEFAULT_VIEW = "6h"


def view_seconds(asked: str | None) -> float | None:
    """The seconds of a view named in a URL (`6h`, `24h`, `7d`); None for a name that is no view."""
    return VIEWS.get((asked or DEFAULT_VIEW).strip().lower())


def history(events: Iterable[Event], key: str, start: float, now: float) -> list[Span]:
    """[from, to, "up" | "down" | "unknown"] spans of one health key over [start, now], from its events."""
    spans: list[Span] = []
    state, at = "unknown", start
    for event in events:
        if event.key != key or event.kind != Kind.HEALTH:
            continue
        word = "up" if event.up else "down"
        if event.time <= start:
            state = word
            continue
        if event.time > now:
            break
        if word != state:
            if event.time > at:
                spans.append([at, event.time, state])
            state, at = word, event.time
    if now > at:
        spans.append([at, now, state])
    return spans


def drained_intervals(events: Iterable[Event], target: str, current: Drain | None, start: float,
                      now: float) -> list[tuple[float, float]]:
    """The stretches of [start, now] in which `target` was drained: from each drain in the operators' log to
    its undrain (or its end, when it had one), and the drain in force now from its start."""
    found: list[tuple[float, float]] = []
    opened: float | None = None
    ends: float | None = None
    for event in sorted((e for e in events if e.key == target), key=lambda e: e.time):
        if opened is not None and ends is not None and ends <= event.time:
            found.append((opened, ends))  # it ran out before anything else was logged
            opened = None
        if event.kind == Kind.DRAIN:
            if opened is None:
                opened = event.time
            ends = event.until  # a renewed drain ends as the last one says
        elif event.kind == Kind.UNDRAIN and opened is not None:
            found.append((opened, event.time))
            opened = None
    if opened is not None and ends is not None and (current is None or ends <= current.since):
        found.append((opened, ends))  # ran out before the drain in force now began
        opened = None
    if current is not None:
        opened = current.since if opened is None else min(opened, current.since)
        ends = current.until
    if opened is not None:
        found.append((opened, min(now, ends) if ends is not None else now))
    return [(max(a, start), min(b, now)) for a, b in found if b > start and a < now and b > a]


def overlay(spans: list[Span], intervals: list[tuple[float, float]], word: str) -> list[Span]:
    """`spans` with every stretch inside `intervals` said as `word` (neighbours of one word merged)."""
    out: list[Span] = []
    for begin, end, state in spans:
        cuts = sorted({begin, end, *(x for a, b in intervals for x in (a, b) if begin < x < end)})
        for x, y in zip(cuts, cuts[1:]):
            middle = (x + y) / 2
            said = word if any(a <= middle < b for a, b in intervals) else state
            if out and out[-1][2] == said and out[-1][1] == x:
                out[-1][1] = y
            else:
                out.append([x, y, said])
    return out


# Drawn above the rest, and never narrower than MIN_MARK pixels: a 30 s outage is a twentieth of a pixel in a
# 6 h strip, and must still be seen (its exact times are in the mark's title and the event log).
MARKED = ("down", "drained")
MIN_MARK = 2.0


def geometry(spans: list[Span], start: float, length: float, width: float) -> list[tuple[float, float, Span]]:
    """(x, width, span) of each span in a strip `width` pixels wide covering [start, start + length]: the
    quiet states first at their true width, then every down or drained span at least MIN_MARK wide (kept inside
    the strip), so that no transition however short disappears in the scale."""
    placed: list[tuple[float, float, Span]] = []
    marks: list[tuple[float, float, Span]] = []
    for span in spans:
        begin, end, state = span
        x = (begin - start) / length * width
        w = (end - begin) / length * width
        if state in MARKED:  # on whole pixels: crisp, never blended away at its edges
            w = max(math.ceil(x + w) - math.floor(x), MIN_MARK)
            x = min(max(0.0, math.floor(x)), width - w)
            marks.append((x, w, span))
        else:
            placed.append((x, max(w, 0.0), span))
    return placed + marks
