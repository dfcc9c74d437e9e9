"""Observed shares an operator can trust: a recent window of first answers, and counters that reset."""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

from dnsbalance.statefiles import StateFolder
from dnsbalance.stats.counters import (
    BUCKET,
    RECENT_WINDOW,
    QueryStats,
    Totals,
    all_totals,
    request_reset,
)

KEY = ("country JP", "deb", "A")
QUERY = ("A", "NOERROR", "JP", "AS")


class Answer:
    def __init__(self, *names: str) -> None:
        self.names = names


def test_recent_window_forgets_old_first_answers(tmp_path: Path) -> None:
    stats = QueryStats(StateFolder(tmp_path).counters("main"))
    start = 1_000_000.0
    for _ in range(30):
        stats.count(QUERY, False, KEY, Answer("jp1", "jp2"))
    stats.fold(now=start)
    for _ in range(10):
        stats.count(QUERY, False, KEY, Answer("jp2", "jp1"))
    totals = stats.fold(now=start + RECENT_WINDOW + 2 * BUCKET)
    assert totals.first[(*KEY, "jp1")] == 30 and totals.first[(*KEY, "jp2")] == 10  # since the start
    recent = totals.recent_first(start + RECENT_WINDOW + 2 * BUCKET)
    assert recent == {(*KEY, "jp2"): 10}  # the window holds only the last answers
    again = Totals.from_json(totals.to_json())  # and survives the file
    assert again.recent_first(start + RECENT_WINDOW + 2 * BUCKET) == recent


def test_reset_starts_every_process_afresh(tmp_path: Path) -> None:
    folder = tmp_path / "counters"
    worker, idle = QueryStats(folder / "w1.json"), QueryStats(folder / "w2.json")
    for stats in (worker, idle):
        stats.count(QUERY, False, KEY, Answer("jp1"))
        stats.save()
    assert all_totals(folder).first[(*KEY, "jp1")] == 2
    past = time.time() - 10
    for path in folder.glob("*.json"):
        os.utime(path, (past, past))
    request_reset(folder)
    assert all_totals(folder).first == {}  # files from before the reset count as empty
    worker.count(QUERY, False, KEY, Answer("jp2"))
    worker.save()  # sees the marker when it folds: its old counts are gone
    totals = all_totals(folder)
    assert dict(totals.first) == {(*KEY, "jp2"): 1}
    assert totals.reset_at > 0


def test_totals_read_while_answerers_counts_arrive(tmp_path: Path) -> None:
    """The supervisor absorbs answerers' counts on its loop while the status page, /metrics and the saver
    read the totals on other threads: what they read is theirs, never a dict changing under them (the
    status page failed with "dictionary changed size during iteration" under load)."""
    stats = QueryStats(StateFolder(tmp_path).counters("main"))
    now = time.time()
    bucket = int(now // BUCKET * BUCKET)

    def counts(n: int) -> Totals:
        arrived = Totals()
        arrived.recent = {bucket: Counter({("country JP", f"name{n}", "A", "jp1"): 1})}
        arrived.queries[("A", "NOERROR", "JP", "AS")] = 1
        return arrived

    for n in range(500):
        stats.absorb(counts(n), now)
    totals = stats.fold(now)
    shown = totals.to_json()
    running, failures = [True], []

    def arrive() -> None:
        n = 500
        while running[0]:
            n += 1
            stats.absorb(counts(n), now)

    thread = threading.Thread(target=arrive)
    thread.start()
    try:
        for _ in range(40):  # a page summarising a big table reads for a while
            try:
                assert sum(totals.recent_first(now).values()) == 500
            except RuntimeError as exc:
                failures.append(exc)
                break
    finally:
        running[0] = False
        thread.join()
    assert not failures
    assert totals.to_json() == shown
    assert sum(stats.fold(now).recent_first(now).values()) > 500  # the counts went on arriving


def test_counts_sent_in_pieces_add_up_to_the_whole(tmp_path: Path) -> None:
    """An answering process sends a second's counts in pieces (pickling them whole would hold its GIL for
    milliseconds): absorbed one by one they are the same totals."""
    worker = QueryStats()
    for n in range(700):
        worker.count(("A", "NOERROR", "JP", "AS"), n % 3 == 0, ("country JP", f"name{n}", "A"),
                     Answer(f"jp{n % 5}", f"jp{(n + 1) % 5}"))
    worker.count(("AAAA", "NXDOMAIN", "", ""), False)
    worker.tally("truncated")
    worker.observe(0.0003)
    taken = worker.take()
    pieces = taken.pieces(100)
    assert len(pieces) > 10 and all(len(p.answers) + len(p.first) + len(p.queries) <= 100 for p in pieces)
    supervisor = QueryStats(StateFolder(tmp_path).counters("main"))
    for piece in pieces:
        supervisor.absorb(piece)
    whole = QueryStats(StateFolder(tmp_path / "other").counters("main"))
    whole.absorb(taken)
    got, expected = supervisor.fold().to_json(), whole.fold().to_json()
    del got["processes"], expected["processes"]  # each process's own resources
    assert got == expected
    assert got["ecs"] == 234 and got["events"]["truncated"] == 1 and sum(got["latency"]) == 1
