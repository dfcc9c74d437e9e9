"""Query statistics: cheap counters on the query path, folded into totals kept on disk.

Per query the fast path does two dictionary increments. Every few seconds (and at exit) the serving
process folds them into cumulative totals and writes `state_dir/counters/<process>.json`; the metrics
endpoint, the status page and `dnsbalance stats` read those files (so workers' counts add up, and a
restart continues where it stopped).

First answers are also kept in one-minute buckets for the last RECENT_WINDOW seconds, so shares can be
judged on recent traffic rather than since the first start; `dnsbalance stats --reset` (a marker file
every process checks when it folds) starts every count afresh.
"""
from __future__ import annotations

import bisect
import json
import logging
import os
import resource
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from dnslib import QTYPE

from dnsbalance.geo.countries import CONTINENTS, countries
from dnsbalance.protocol.edns import Subnet
from dnsbalance.statefiles import RepeatedWrite, write_atomically
from dnsbalance.stats.hyperloglog import HyperLogLog


class Named(Protocol):
    """An answer as the counters see it: the mirrors (or relays) in it, in order."""

    names: tuple[str, ...]


class Indexed(Protocol):
    """Precomputed answers (ranking/variants.py), which name the mirrors of the one at an index."""

    def names_at(self, index: int) -> tuple[str, ...]: ...


Chosen = Named | tuple[Indexed, int]  # a full-path answer, or (precomputed answers, which one)


def chosen_names(chosen: Chosen) -> tuple[str, ...]:
    if isinstance(chosen, tuple):
        return chosen[0].names_at(chosen[1])
    return chosen.names

log = logging.getLogger(__name__)

QueryKey = tuple[str, str, str, str]  # (type, rcode, country, continent); "" when unknown
AnswerKey = tuple[str, str, str]  # (region, owner name, type)
BUCKET = 60  # seconds per bucket of recent first answers
RECENT_WINDOW = 15 * 60  # seconds of first answers the "recent" shares cover
RESET_MARKER = "reset"  # in the counters folder: its mtime is when the counters were last reset

# The totals' key space is bounded whatever clients send: types without a name (TYPE12345) fold into one
# label, countries and continents outside ISO 3166 into "unknown". 65,536 types x 250 countries would
# otherwise make every save, load and scrape as slow as a flood wants.
OTHER_TYPE = "other"
KNOWN_TYPES = frozenset(str(name) for name in QTYPE.forward.values())
KNOWN_RCODES = frozenset(("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS",
                          "BADCOOKIE", "YXDOMAIN", "NOTAUTH", "NOTZONE"))
MAX_COUNTERS_BYTES = 32 << 20  # a counters file larger than this is not ours: ignored
# Answer latency (seconds, receipt to reply ready), as Prometheus histogram bucket bounds; +Inf is the last.
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LATENCY_SAMPLE = 16  # one UDP query in this many is timed (server.py): the clock calls cost more than a count
# Rare events of the answer path (QueryStats.tally), by name, for /metrics:
# udp, tcp (queries received), native (UDP queries the native fast path answered), truncated (a reply cut to fit,
# TC set), rrl_drop, rrl_slip, cookie_received,
# cookie_valid, cookie_invalid (a server cookie we did not issue, or expired), formerr (unparsable queries,
# answered FORMERR without being counted among the queries).


def bounded(key: tuple) -> QueryKey:  # type: ignore[type-arg]
    """A query key inside the bounded key space (on folding and loading, never per query)."""
    qtype, rcode, country, continent = (str(part) for part in key[:4])
    return (qtype if qtype in KNOWN_TYPES else OTHER_TYPE, rcode if rcode in KNOWN_RCODES else OTHER_TYPE,
            country if country in countries() and len(country) == 2 else "",
            continent if continent in CONTINENTS else "")


@dataclass
class Totals:
    queries: Counter = field(default_factory=Counter)  # QueryKey -> queries
    ecs: int = 0  # queries located by their client subnet
    answers: Counter = field(default_factory=Counter)  # AnswerKey + (mirror,) -> times in an answer
    first: Counter = field(default_factory=Counter)  # AnswerKey + (mirror,) -> times first in an answer
    clients: HyperLogLog = field(default_factory=HyperLogLog)  # distinct client subnets or resolvers
    recent: dict[int, Counter] = field(default_factory=dict)  # bucket start -> first answers in it
    reset_at: float = 0.0  # when these counts started (a reset, or 0: never reset)
    events: Counter = field(default_factory=Counter)  # tally name -> count (see LATENCY_SAMPLE's comment)
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))  # per bucket, not cumulative
    latency_sum: float = 0.0  # seconds, over the timed queries
    processes: dict[str, dict[str, float]] = field(default_factory=dict)  # process name -> cpu_seconds, rss_bytes

    def add(self, other: "Totals") -> "Totals":
        recent = {start: Counter(counts) for start, counts in self.recent.items()}
        for start, counts in other.recent.items():
            recent[start] = recent.get(start, Counter()) + counts
        return Totals(self.queries + other.queries, self.ecs + other.ecs, self.answers + other.answers,
                      self.first + other.first, self.clients.merge(other.clients), recent,
                      max(self.reset_at, other.reset_at), events=self.events + other.events,
                      latency=[a + b for a, b in zip(self.latency, other.latency)],
                      latency_sum=self.latency_sum + other.latency_sum,
                      processes={**self.processes, **other.processes})

    def absorb(self, other: "Totals") -> None:
        """Add `other` in place: the supervisor takes every answerer's counts each second, and a copy of
        big totals each time would cost more than the counting."""
        self.queries.update(other.queries)
        self.ecs += other.ecs
        self.answers.update(other.answers)
        self.first.update(other.first)
        self.clients = self.clients.merge(other.clients)
        for start, counts in other.recent.items():
            self.recent.setdefault(start, Counter()).update(counts)
        self.events.update(other.events)
        self.latency = [a + b for a, b in zip(self.latency, other.latency)]
        self.latency_sum += other.latency_sum
        self.processes.update(other.processes)

    def pieces(self, size: int) -> list["Totals"]:
        """These totals cut into pieces of at most `size` counter entries, the first carrying everything
        else; absorbing every piece adds up to the whole. An answering process pickles its counts while
        holding its GIL: a second's worth whole would hold up its queries for milliseconds."""
        entries = [(name, key, count) for name in ("queries", "answers", "first")
                   for key, count in getattr(self, name).items()]
        entries += [("recent", (start, key), count) for start, counts in self.recent.items()
                    for key, count in counts.items()]
        head = Totals(ecs=self.ecs, clients=self.clients, reset_at=self.reset_at, events=self.events,
                      latency=self.latency, latency_sum=self.latency_sum, processes=self.processes)
        parts = [head]
        for offset in range(0, len(entries), size):
            part = head if offset == 0 else Totals()
            for name, key, count in entries[offset:offset + size]:
                if name == "recent":
                    part.recent.setdefault(key[0], Counter())[key[1]] += count
                else:
                    getattr(part, name)[key] += count
            if part is not head:
                parts.append(part)
        return parts

    def recent_first(self, now: float, window: float = RECENT_WINDOW) -> Counter:
        """First answers of the last `window` seconds (whole buckets)."""
        total: Counter = Counter()
        for start, counts in self.recent.items():
            if start + BUCKET > now - window:
                total += counts
        return total

    def to_json(self) -> dict:  # type: ignore[type-arg]
        return {
            "queries": [[*k, n] for k, n in sorted(self.queries.items())],
            "ecs": self.ecs,
            "answers": [[*k, n] for k, n in sorted(self.answers.items())],
            "first": [[*k, n] for k, n in sorted(self.first.items())],
            "clients": self.clients.dump(),
            "recent": [[start, *k, n] for start, counts in sorted(self.recent.items())
                       for k, n in sorted(counts.items())],
            "reset_at": self.reset_at,
            "events": dict(sorted(self.events.items())),
            "latency": self.latency,
            "latency_sum": self.latency_sum,
            "processes": self.processes,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Totals":  # type: ignore[type-arg]
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, found {type(data).__name__}")

        def counter(rows: list, width: int, key=tuple) -> Counter:  # type: ignore[no-untyped-def,type-arg]
            if not isinstance(rows, list):
                raise TypeError("expected a list of rows")
            found: Counter = Counter()  # type: ignore[type-arg]
            for row in rows:
                if not isinstance(row, list) or len(row) != width + 1:
                    raise TypeError("a row of the wrong shape")
                found[key(str(part) for part in row[:width])] += int(row[width])
            return found

        recent: dict[int, Counter] = {}  # type: ignore[type-arg]
        rows = data.get("recent", [])
        if not isinstance(rows, list):
            raise TypeError("expected a list of recent rows")
        for row in rows:
            if not isinstance(row, list) or len(row) != 6:
                raise TypeError("a recent row of the wrong shape")
            recent.setdefault(int(row[0]), Counter())[tuple(str(part) for part in row[1:5])] += int(row[5])
        events = data.get("events", {})
        latency = data.get("latency") or [0] * (len(LATENCY_BUCKETS) + 1)
        processes = data.get("processes", {})
        if not isinstance(events, dict) or not isinstance(latency, list) or \
                len(latency) != len(LATENCY_BUCKETS) + 1 or not isinstance(processes, dict):
            raise TypeError("events, latency or processes of the wrong shape")
        return cls(counter(data.get("queries", []), 4, lambda parts: bounded(tuple(parts))),
                   int(data.get("ecs", 0)),
                   counter(data.get("answers", []), 4), counter(data.get("first", []), 4),
                   HyperLogLog.load(data["clients"]) if data.get("clients") else HyperLogLog(), recent,
                   float(data.get("reset_at", 0.0)),
                   events=Counter({str(k): int(v) for k, v in list(events.items())[:64]}),
                   latency=[int(n) for n in latency], latency_sum=float(data.get("latency_sum", 0.0)),
                   processes={str(k): {"cpu_seconds": float(v["cpu_seconds"]), "rss_bytes": float(v["rss_bytes"])}
                              for k, v in list(processes.items())[:1024]})


class QueryStats:
    """The counters of one serving process."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path  # where this process's totals are kept; None: memory only
        self.queries: dict[QueryKey, int] = {}
        self.variant_hits: dict[tuple[AnswerKey, Chosen], int] = {}
        self.ecs = 0
        self.clients = HyperLogLog()
        self.base = load_totals(path) if path is not None else Totals()
        self._folding = threading.Lock()  # the saver's thread and the status page fold; queries never wait
        self.saving = RepeatedWrite(log, f"query counters to {path}")  # a failing save is logged once
        self._extras()

    def _extras(self) -> None:
        # Transport counts, rare events and sampled latency: plain attributes and dicts, moved at each fold.
        self.udp = self.udp_taken = 0
        self.tcp = self.tcp_taken = 0
        self.events: dict[str, int] = {}
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        # Counts kept elsewhere until a fold (the native fast path's, answer/native.py), by who keeps them:
        # each adds its counts to these counters when called.
        self.feeders: dict[int, Callable[[QueryStats], None]] = {}

    def count(self, key: QueryKey, ecs: bool, answer: AnswerKey | None = None,
              variant: Chosen | None = None) -> None:
        """One answered query, from either answer path: its (type, rcode, country, continent), whether its
        client subnet located it, and for an A/AAAA answer which mirrors it carried. Plain dict increments:
        this runs for every query."""
        queries = self.queries
        queries[key] = queries.get(key, 0) + 1
        if ecs:
            self.ecs += 1
        if variant is not None and answer is not None:
            hits, hit = self.variant_hits, (answer, variant)
            hits[hit] = hits.get(hit, 0) + 1

    def tally(self, name: str) -> None:
        """One rare event (a truncation, a rate-limited reply, a cookie...): off the common path only."""
        self.events[name] = self.events.get(name, 0) + 1

    def observe(self, seconds: float) -> None:
        """One timed answer (server.py samples them)."""
        self.latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def _fold_extras(self, totals: Totals) -> None:
        """Move transport counts, events and latency into `totals` (which this fold adds to the base)."""
        # The transport counts only grow: taking the difference since the last fold, rather than setting
        # them back to 0, cannot lose an increment an answering thread makes at the same moment.
        udp, tcp = self.udp - self.udp_taken, self.tcp - self.tcp_taken
        self.udp_taken, self.tcp_taken = self.udp_taken + udp, self.tcp_taken + tcp
        events, latency, spent = self.events, self.latency, self.latency_sum
        self.events = {}
        self.latency, self.latency_sum = [0] * (len(LATENCY_BUCKETS) + 1), 0.0
        totals.events.update({k: v for k, v in list(events.items()) if v})
        for name, count in (("udp", udp), ("tcp", tcp)):
            if count:
                totals.events[name] += count
        totals.latency, totals.latency_sum = list(latency), spent

    def fold(self, now: float | None = None) -> Totals:
        """Move the hot counters into the cumulative totals, and return a copy of them: the supervisor
        absorbs answerers' counts into the totals while pages and saves read them on other threads."""
        with self._folding:
            return self._fold(time.time() if now is None else now).add(Totals())

    def _fold(self, now: float) -> Totals:
        self._follow_reset()
        self.base.absorb(self._drain(now))
        self._prune(now)
        self.base.processes[self.path.stem if self.path is not None else "main"] = own_resources()
        return self.base

    def forked(self) -> None:
        """In a freshly forked answering process: start from nothing (its counts go up to the supervisor,
        which has the totals), with a lock no thread of the parent can be holding."""
        self._folding = threading.Lock()
        self.queries, self.variant_hits, self.ecs, self.clients = {}, {}, 0, HyperLogLog()
        self._extras()
        self.base, self.path = Totals(), None

    def take(self) -> Totals:
        """The counts since the last take, as totals of their own (an answering process sends them to the
        supervisor, which absorbs them)."""
        with self._folding:
            totals = self._drain(time.time())
            totals.processes = {f"answerer-{os.getpid()}": own_resources()}
            return totals

    def absorb(self, counts: Totals, now: float | None = None) -> None:
        """Add an answering process's counts to this process's totals."""
        with self._folding:
            now = time.time() if now is None else now
            self._follow_reset()
            self.base.absorb(counts)
            self._prune(now)

    def _follow_reset(self) -> None:
        reset = reset_time(self.path.parent) if self.path is not None else 0.0
        if reset > self.base.reset_at:  # `dnsbalance stats --reset` since the last fold
            self.base = Totals(reset_at=reset)

    def _prune(self, now: float) -> None:
        self.base.recent = {start: counts for start, counts in self.base.recent.items()
                            if start + BUCKET > now - RECENT_WINDOW}
        for name in [n for n in self.base.processes if n.startswith("answerer-")]:
            if not os.path.exists(f"/proc/{name.split('-', 1)[1]}"):
                del self.base.processes[name]  # a retired generation's process

    def _drain(self, now: float) -> Totals:
        """Empty the hot counters into a Totals of their own."""
        for feed in list(self.feeders.values()):
            feed(self)
        queries, hits, ecs = self.queries, self.variant_hits, self.ecs
        self.queries, self.variant_hits, self.ecs = {}, {}, 0
        # An answering thread may be between reading a dict and storing into it: give up the GIL for a
        # moment so that it finishes into the old one before that is read.
        time.sleep(0.001)
        totals = Totals(Counter(), ecs)
        for key, count in list(queries.items()):
            totals.queries[bounded(key)] += count
        for (answer, variant), count in list(hits.items()):
            names = chosen_names(variant)
            totals.first[(*answer, names[0])] += count
            for mirror in names:
                totals.answers[(*answer, mirror)] += count
        totals.clients, self.clients = self.clients, HyperLogLog()
        if totals.first:
            totals.recent = {int(now // BUCKET * BUCKET): Counter(totals.first)}
        self._fold_extras(totals)
        return totals

    def save(self) -> None:
        totals = self.fold()
        if self.path is None:
            return
        try:
            write_atomically(self.path, json.dumps(totals.to_json()))
        except OSError as exc:
            self.saving.failed(exc)
        else:
            self.saving.worked()


def load_totals(path: Path) -> Totals:
    """A process's totals on disk; a file that is missing, too big or of the wrong shape counts as none."""
    try:
        if path.stat().st_size > MAX_COUNTERS_BYTES:
            raise ValueError(f"larger than {MAX_COUNTERS_BYTES >> 20} MiB")
        return Totals.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return Totals()
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        log.warning("ignoring unreadable counters %s: %s", path, exc)
        return Totals()


def all_totals(folder: Path, own: QueryStats | None = None) -> Totals:
    """The sum over every process's counter file (this process's live counters instead of its file);
    files older than the last reset (a process that has not folded since) count as empty."""
    total = own.fold() if own is not None else Totals()
    skip = own.path if own is not None else None
    reset = reset_time(folder)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            if path != skip:
                found = load_totals(path)
                if found.reset_at >= reset:
                    total = total.add(found)
    return total


def reset_time(folder: Path) -> float:
    """When the counters in `folder` were last reset (0: never)."""
    try:
        return (folder / RESET_MARKER).stat().st_mtime
    except OSError:
        return 0.0


def request_reset(folder: Path) -> None:
    """Start every process's counts afresh: each sees the marker when it next folds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESET_MARKER).write_text(f"{time.time()}\n")


def own_resources() -> dict[str, float]:
    """This process's CPU seconds and resident memory, for the metrics of a process that reads its file."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            rss = float(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        rss = float(usage.ru_maxrss * 1024)  # the peak, where /proc is missing
    return {"cpu_seconds": usage.ru_utime + usage.ru_stime, "rss_bytes": rss}


def client_identity(client: str, subnet: Subnet | None) -> bytes:
    """A distinct client, for the HyperLogLog: its subnet when it sent one, else the resolver's address."""
    if subnet is None or subnet.source == 0:
        return client.encode()
    return bytes((subnet.family, subnet.source)) + subnet.raw
