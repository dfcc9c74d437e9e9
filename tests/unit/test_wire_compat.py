"""Replies are byte for byte what the server sent before the answer pipeline, the wire compiler and the
renderer (issue 21), for the same table and random source: tests/fixtures/wire/replies.json holds the
bytes main's code gave for a range of questions (tests/fixtures/wire/generate.py wrote it, from the code
before the change).

Before, the two answer paths differed in one way (test_fastpath.py's comment): the fast path wrote a
negative answer's SOA names in full where the full path compressed them. Now one renderer writes both, as
the full path did: those replies are the full path's bytes, and the same message as the fast path's were.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import dns.message
import pytest

from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import load
from tests.harness import FIXTURES

WIRE = FIXTURES / "wire"
NOW = 1_700_000_000  # the generator's clock and every file's mtime (the SOA serial)
ROWS = json.loads((WIRE / "replies.json").read_text())


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Balancer:
    target = tmp_path_factory.mktemp("wire") / "config"
    shutil.copytree(WIRE / "zone", target)
    shutil.copy(country_mmdb, target / "test.mmdb")
    for path in target.rglob("*"):
        os.utime(path, (NOW, NOW))
    loaded, problems = load(target)
    assert loaded is not None, problems
    balancer = Balancer(loaded)
    balancer.pipeline.clock = balancer.pipeline.monotonic = lambda: float(NOW)
    return balancer


def replay(balancer: Balancer, row: dict, fast: bool) -> bytes | None:
    packet, serving = bytes.fromhex(row["query"]), balancer.serving
    balancer.rng = random.Random(row["seed"])
    if fast:
        return balancer.handle(packet, row["client"], row["tcp"], serving)
    return balancer.full(serving, packet, row["client"], row["tcp"])


def hexed(wire: bytes | None) -> str | None:
    return wire.hex() if wire is not None else None


def test_the_fixture_covers_what_it_says() -> None:
    labels = " ".join(row["label"] for row in ROWS)
    for needle in (" A ", " AAAA ", " SOA ", " NS ", " SRV ", " ANY ", "CH version.bind", "outside", "opcode 4",
                   "AXFR", "badvers", "ecs=", "cookie valid", "cookie malformed", "payload=512", " tcp", "nsid"):
        assert needle in labels
    rcodes = {dns.message.from_wire(bytes.fromhex(row["full"])).rcode() for row in ROWS
              if row["full"] and row["label"] not in ("two questions", "question cut short")
              and not row["label"].startswith("opcode 5")}
    assert rcodes >= {0, 1, 3, 4, 5, 16}


def test_the_full_path_gives_the_same_bytes(balancer: Balancer) -> None:
    differ = [row["label"] for row in ROWS if hexed(replay(balancer, row, fast=False)) != row["full"]]
    assert differ == []


def test_served_replies_give_the_same_bytes(balancer: Balancer) -> None:
    """As the server sends them: the fast path where it answers, the stages otherwise; twice, the second
    time from the prepared-reply cache."""
    differ = []
    for row in ROWS:
        for _ in range(2):
            served = hexed(replay(balancer, row, fast=True))
            if row["served"] == row["full"]:
                if served != row["served"]:
                    differ.append(row["label"])
            else:  # before, a fast-path negative answer with the SOA's names written in full
                assert served is not None and served == row["full"], row["label"]
                before = dns.message.from_wire(bytes.fromhex(row["served"]))
                assert dns.message.from_wire(bytes.fromhex(served)) == before
                assert not before.answer and before.rcode() in (0, 3)
    assert differ == []
