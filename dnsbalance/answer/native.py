"""Which UDP fast path runs, and the Python side of the native one (dnsbalance/_native.c, issue 27).

The native path is the Python fast path's cache hit (answer/fastpath.py) in C: a datagram whose shape (the
query less its ID, its name lower-cased, and the client address) the Python path has answered before is
answered from the shape's prepared reply, with the draw taken from the pipeline's own random(); any other
datagram goes, in order, to the Python fast path and then the pipeline, and the Python path's Prepared for
it is copied into the native shapes (learn). So the native path answers exactly what the Python path
would, with the same bytes and the same sequence of draws, and everything the Python path refuses (TCP,
odd queries, cookies, RRL when on, names outside the zone, replies over the client's UDP size) never reaches it.
DO queries on a signed zone are learnt too: an answer's shape names the table's signed entry of its (owner
name, answer set), which holds the presigned RRSIG record of each distinct set (ZoneSignatures.sets' tuple,
not copied); the C side appends the drawn variant's, as Prepared.reply does. Signed NXDOMAIN and NODATA are
fixed replies like unsigned ones.

The answer table (the C views of the compiled table's answer sets, and on a signed zone its signed entries)
is built once per table generation in the supervisor, before the answerers fork (ready()); the shapes and
their counters are each answering process's own. The extension is optional: without it (no compiler at
install), or with DNSBALANCE_NATIVE=0, the Python fast path runs; the start log and the status JSON say which.
"""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dnsbalance.compiler.answers import AnswerSets
    from dnsbalance.compiler.table import CompiledTable
    from dnsbalance.stats.counters import QueryStats


class Learnable(Protocol):
    """What learn() copies of the Python fast path's prepared reply (fastpath.Prepared)."""

    answers: AnswerSets | None
    signed: tuple[bytes, ...] | None
    query_key: Any
    ecs: bool
    answer_key: Any
    heads: dict[int, bytes]
    opt: bytes
    fixed: bytes

try:
    from dnsbalance import _native
except ImportError:  # not built: no compiler or Python headers at install
    _native = None

ENVIRONMENT = "DNSBALANCE_NATIVE"  # 0, off, no or false: the Python fast path even where the native one is built
SHAPES_LIMIT = 1 << 16  # shapes kept per answering process; emptied when full (the Python path's CACHE_LIMIT)


def switched_off() -> bool:
    return os.environ.get(ENVIRONMENT, "").strip().lower() in ("0", "off", "no", "false")


def active() -> bool:
    """Whether UDP queries take the native path in this process."""
    return _native is not None and not switched_off()


def describe() -> dict[str, str]:
    """For the start log and the status JSON: which path runs, and why."""
    if _native is None:
        return {"path": "python", "why": "the native extension is not built (no C compiler at install)"}
    if switched_off():
        return {"path": "python", "why": f"{ENVIRONMENT}={os.environ.get(ENVIRONMENT)}"}
    return {"path": "native", "why": "the native extension is built and not switched off"}


class NativePath:
    """The native structures of one FastPath: its answer table (shared by the answerers, made before they
    fork) and the shapes of the process answering (made in it, on first use)."""

    __slots__ = ("building", "built_from", "built_in", "compiled", "index", "learning", "meta", "pid", "shapes",
                 "signed", "signed_from", "signed_index", "slots", "table")

    def __init__(self, compiled: CompiledTable) -> None:
        self.compiled = compiled
        self.table: Any = None  # _native.AnswerTable
        self.index: dict[int, int] = {}  # id(AnswerSets) -> its index in the table (the table keeps them alive)
        self.built_from = -1  # answer sets compiled when the table was built
        # Signed zones: the table's signed entries, (answer set index, its variants' set numbers, the RRSIG record
        # per set number: a tuple of ZoneSignatures.sets, not copied), only ever appended (shapes keep indices)
        self.signed: list[tuple[int, Any, tuple[bytes, ...]]] = []
        # (id() of such a tuple, answer set index) -> its signed entry (the table keeps the tuple alive)
        self.signed_index: dict[tuple[int, int], int] = {}
        self.signed_from = 0  # the signatures' sets when the table was built
        self.built_in = 0  # the process that built it
        self.building = threading.Lock()
        self.learning = threading.Lock()  # the IPv4 and IPv6 listeners' threads learn into one set of slots
        self.shapes: Any = None  # _native.Shapes, this process's
        self.pid = 0
        self.slots: dict[tuple[object, ...], int] = {}  # what a query counts as -> its counter slot
        self.meta: list[tuple[Any, bool, Any, Any]] = []  # slot -> (query key, ecs, answer key, answer sets)

    def ready(self) -> None:
        """Build the answer table from every answer set compiled so far (again if more have been since): in
        the supervisor, before each fork, so that the answerers share it."""
        assert _native is not None
        with self.building:  # the build's thread and the fork may both ask
            compiled = self.compiled
            cache = compiled.answer_cache
            signatures = compiled.signatures
            signed_sets = len(signatures.sets) if signatures is not None else 0
            if self.table is not None and self.built_from == len(cache) and self.signed_from == signed_sets:
                return
            sets = list(cache.values())  # in the order compiled: a table built again keeps every index
            self.index = {id(answers): i for i, answers in enumerate(sets)}  # more entries, or the same
            if signatures is not None:
                # DO on a signed zone: an RRSIG record per (owner name, answer set), by the variant's set number.
                # Signing compiles every set it signs, so the entries are all there from the first build on.
                for (_, variants), records in signatures.sets.items():
                    answers = cache.get(variants)
                    index = self.index.get(id(answers)) if answers is not None else None
                    if index is not None and (id(records), index) not in self.signed_index:
                        self.signed_index[id(records), index] = len(self.signed)
                        self.signed.append((index, variants.sets, records))  # as Prepared.reply indexes
            table = _native.AnswerTable(sets, self.signed)
            self.table, self.built_from, self.built_in, self.signed_from = table, len(sets), os.getpid(), signed_sets
            if self.shapes is not None and self.pid == self.built_in:
                self.shapes.retable(table)

    def process_shapes(self) -> Any:
        """This process's shapes (a forked child starts its own: its parent's counts are not its own)."""
        pid = os.getpid()
        if self.shapes is None or self.pid != pid:
            assert _native is not None
            if self.table is None:
                self.ready()  # not forked from a supervisor (tests, one process): built here
            self.shapes = _native.Shapes(self.table, SHAPES_LIMIT)
            self.pid, self.slots, self.meta = pid, {}, []
        return self.shapes

    def learn(self, data: bytes, host: str, prepared: Learnable) -> bool:
        """Copy the Python path's prepared reply to a query into the native shapes. False when it cannot
        be (answer sets or signatures not in the table this process shares: the Python path keeps answering
        that shape)."""
        shapes = self.process_shapes()
        answers = prepared.answers
        if answers is None:
            index = -1
        else:
            found = self.index.get(id(answers))
            if found is None and self.built_in == os.getpid():
                self.ready()  # compiled since, in the process that built the table (not a forked answerer)
                found = self.index.get(id(answers))
            if found is None or found >= len(self.table):
                return False  # compiled lazily after the fork: a table of its own would copy it per answerer
            index = found
        signed = -1
        if prepared.signed is not None:  # DO on a signed zone: the table's entry with the RRSIG of each variant
            assert answers is not None
            entry = self.signed_index.get((id(prepared.signed), index))
            if entry is None and self.built_in == os.getpid():
                self.ready()
                entry = self.signed_index.get((id(prepared.signed), index))
            if entry is None or entry >= self.table.signed():
                return False  # not in the table this process shares: the Python path answers it
            signed = entry
        key = (prepared.query_key, prepared.ecs, prepared.answer_key, index)
        with self.learning:  # a slot and its meta are made together: meta[i] describes slot i
            slot = self.slots.get(key)
            if slot is None:
                slot = self.slots[key] = shapes.slot(index)
                self.meta.append((prepared.query_key, prepared.ecs, prepared.answer_key, answers))
        heads = prepared.heads
        sized = [heads.get(count) for count in range(max(heads) + 1)] if heads else []
        return bool(shapes.learn(data, host, index, slot, sized, prepared.opt, prepared.fixed, signed))

    def drain_into(self, stats: QueryStats) -> None:
        """Add the queries counted natively since the last drain to `stats`, as QueryStats.count would have."""
        shapes = self.shapes
        if shapes is None or self.pid != os.getpid():
            return
        queries, hits = stats.queries, stats.variant_hits
        for slot, count, variants in shapes.drain():
            query_key, ecs, answer_key, answers = self.meta[slot]
            queries[query_key] = queries.get(query_key, 0) + count
            if ecs:
                stats.ecs += count
            for index, times in variants:
                hit = (answer_key, (answers, index))
                hits[hit] = hits.get(hit, 0) + times
