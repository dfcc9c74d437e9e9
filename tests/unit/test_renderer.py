"""The renderer (the one writer of wire format) and the compiler over it, in process."""
from __future__ import annotations

import random
import struct
from pathlib import Path

import dns.message
import pytest

from dnsbalance.compiler.answers import AnswerSets
from dnsbalance.compiler.table import compiled
from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import DEFAULT_REGION, Config
from dnsbalance.protocol.codes import DClass, Rcode, RType
from dnsbalance.protocol.renderer import (
    Compressed,
    Message,
    Question,
    Record,
    Whole,
    flags,
    header_only,
    name_of,
    render,
    truncated,
)
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.build import build_table
from dnsbalance.ranking.pool import Candidate, Pool
from dnsbalance.ranking.variants import Variants
from dnsbalance.health.view import ALL_USABLE
from tests.harness import make_config

QNAME = name_of("deb.cdn.example.org")
APEX = name_of("cdn.example.org")


def a_record(owner: tuple[bytes, ...], last: int) -> Record:
    return Record(owner, RType.A, DClass.IN, 60, (bytes((192, 0, 2, last)),))


def message(additional: int = 0, answers: int = 1, opt: bool = True) -> Message:
    return Message(7, flags(0, True, Rcode.NOERROR, True), Question(QNAME, RType.A, DClass.IN),
                   tuple(a_record(QNAME, i) for i in range(answers)),
                   additional=tuple(a_record(name_of(f"ns{i}.cdn.example.org"), i) for i in range(additional)),
                   opt=(0, False, b"") if opt else None)


def test_names_point_to_what_was_written_before() -> None:
    soa = Record(APEX, RType.SOA, DClass.IN, 45, (Compressed(name_of("ns1.cdn.example.org")),
                                                 Compressed(name_of("hostmaster.example.org")), bytes(20)))
    wire = render(Message(1, 0, Question(QNAME, RType.A, DClass.IN), authority=(soa,)), 512).wire
    assert wire[37:39] == b"\xc0\x10"  # the SOA's owner, after the question: the apex inside it, at 12 + 4
    assert b"\x03ns1\xc0\x10" in wire and b"\x0ahostmaster\xc0\x14" in wire
    parsed = dns.message.from_wire(wire)
    assert str(parsed.authority[0][0].mname) == "ns1.cdn.example.org."


def test_letter_case_decides_compression() -> None:
    asked = name_of("DEB.CDN.EXAMPLE.ORG")
    ns = Record(asked, RType.NS, DClass.IN, 60, (Compressed(name_of("ns1.cdn.example.org")),))
    wire = render(Message(1, 0, Question(asked, RType.NS, DClass.IN), (ns,)), 512).wire
    assert b"\x03ns1\x03cdn\x07example\x03org\x00" in wire  # nothing of the same case to point to


def test_srv_targets_are_written_whole() -> None:
    target = name_of("tokyo1.relay.cdn.example.org")
    srv = Record(QNAME, RType.SRV, DClass.IN, 30, (struct.pack("!HHH", 0, 1, 3478), Whole(target)))
    after = Record(target, RType.A, DClass.IN, 30, (bytes(4),))
    wire = render(Message(1, 0, Question(QNAME, RType.SRV, DClass.IN), (srv,), additional=(after,)), 512).wire
    assert b"\x06tokyo1\x05relay\x03cdn\x07example\x03org\x00" in wire
    assert dns.message.from_wire(wire).additional[0].name.to_text() == "tokyo1.relay.cdn.example.org."


def test_truncation_drops_glue_first_then_sets_tc() -> None:
    whole = render(message(additional=3), 4096)
    assert not whole.truncated and dns.message.from_wire(whole.wire).additional
    no_glue = render(message(additional=3), len(whole.wire) - 1)
    parsed = dns.message.from_wire(no_glue.wire)
    assert not no_glue.truncated and parsed.answer and not parsed.additional and parsed.edns == 0
    cut = render(message(answers=40), 512)
    parsed = dns.message.from_wire(cut.wire)
    assert cut.truncated and parsed.flags & 0x0200 and not parsed.answer and parsed.edns == 0
    slipped = dns.message.from_wire(truncated(message(additional=2)))  # the rate limiter's slip
    assert slipped.flags & 0x0200 and not slipped.answer and not slipped.additional and slipped.edns == 0


def test_a_question_too_long_for_the_limit_is_cut() -> None:
    long_name = tuple(b"x" * 60 for _ in range(4))
    wire = render(Message(1, 0, Question(long_name, RType.A, DClass.IN), opt=(0, False, b"")), 200)
    assert wire.truncated and len(wire.wire) == 200


def test_header_only_replies() -> None:
    assert header_only(struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 0), Rcode.SERVFAIL) == \
        struct.pack("!HHHHHH", 9, 0x8102, 0, 0, 0, 0)
    assert header_only(struct.pack("!HHHHHH", 9, 0x8100, 0, 0, 0, 0), Rcode.FORMERR) is None
    assert header_only(b"\x00", Rcode.FORMERR) is None


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Config:
    config, problems = check_config(make_config(tmp_path_factory.mktemp("compiler") / "config", country_mmdb))
    assert config is not None, problems
    return config


@pytest.fixture(scope="module")
def table(config: Config) -> ActiveTable:
    return build_table(config, ALL_USABLE, generation=1, serial=1, seed=1)


def test_compiled_answer_sets_are_the_variants_in_wire_format() -> None:
    pool = Pool(DEFAULT_REGION, tuple(Candidate(f"m{i}", 10 + i, (f"192.0.2.{i}", f"192.0.2.{100 + i}"))
                                      for i in range(5)))
    variants = Variants(pool, RType.A, 3, 60, random.Random(4))
    answers = AnswerSets(variants)
    assert len(answers) == len(variants)
    for index in range(len(variants)):
        variant = variants.variant(index)
        assert answers.wire_at(index) == variant.wire
        assert answers.count_at(index) == len(variant.addresses) == len(variant.names)
        assert answers.names_at(index) == variant.names
    assert answers.signatures is None and answers.signature_at(0) is None  # the slot DNSSEC fills (issue 25)
    answers.signatures = tuple(bytes([n]) for n in range(max(variants.sets) + 1))
    rotations = [i for i in range(len(variants)) if variants.sets[i] == variants.sets[0]]
    assert len(rotations) == answers.count_at(0)  # every rotation of the first set shares its signature
    assert {answers.signature_at(i) for i in rotations} == {b"\x00"}


def test_the_compiled_table_is_made_once_and_inherited(config: Config, table: ActiveTable) -> None:
    wire = compiled(table)
    assert compiled(table) is wire
    wire.precompute()
    assert wire.answer_cache
    fresh = compiled(build_table(config, ALL_USABLE, generation=2, serial=2, seed=2))
    assert fresh.precompute(wire) == 0  # nothing computed again: every pool unchanged
    assert set(map(id, fresh.answer_cache.values())) == set(map(id, wire.answer_cache.values()))


def test_negative_tails_match_the_full_render(table: ActiveTable) -> None:
    zone = compiled(table).zone
    for text in ("nosuch.cdn.example.org", "NOSUCH.CDN.example.org", "x.ns1.cdn.example.org", "cdn.example.org",
                 "a.b.Cdn.Example.org"):
        qname = b"".join(bytes((len(label),)) + label for label in name_of(text)) + b"\x00"
        labels = name_of(text)
        whole = render(Message(0, 0, Question(labels, RType.A, DClass.IN),
                               authority=(zone.negative_soa(labels[-zone.depth:]),)), 4096).wire
        assert zone.negative_tail(qname) == whole[12 + len(qname) + 4 :]
        assert zone.negative_tail(qname) == whole[12 + len(qname) + 4 :]  # from the cache
