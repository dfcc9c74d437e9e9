"""The native fast path (dnsbalance/_native.c, answer/native.py) against the Python one, in process: the same
bytes for the same random source, whatever the letter case; malformed datagrams never crash it and never get an
answer the Python path would not give; its counts are the Python path's; its answer table is made before a
fork and shared, not made again, by the child."""
from __future__ import annotations

import os
import random
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsbalance.answer import native
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import load
from dnsbalance.serving.snapshot import Serving
from dnsbalance.stats.counters import QueryStats, Totals
from tests.harness import fixture_balancer, make_config

pytestmark = pytest.mark.skipif(native._native is None, reason="the native extension is not built")

NAMES = ["deb.cdn.example.org", "cdn.example.org", "nosuch.cdn.example.org", "deep.cdn.example.org",
         "a.b.cdn.example.org", "ns1.cdn.example.org", "example.com"]
SUBNETS = [None, ("1.0.16.0", 24), ("5.0.0.0", 16), ("2.0.1.0", 24), ("2001:200:1::", 48), ("0.0.0.0", 0)]
CLIENTS = ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.2"]


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Balancer:
    return fixture_balancer(tmp_path_factory.mktemp("native") / "config", country_mmdb)


@pytest.fixture(scope="module")
def signed_balancer(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Balancer:
    """The same zone signed (`dnssec: {sign: true}`): DO answers carry their set's presigned RRSIG."""
    return fixture_balancer(tmp_path_factory.mktemp("native-signed") / "config", country_mmdb, signed=True)


def query(name: str, rdtype: str = "A", subnet: tuple[str, int] | None = None, ident: int = 1,
          edns: bool = True, do: bool = False, payload: int = 1232) -> bytes:
    options = [dns.edns.ECSOption(*subnet)] if subnet is not None and edns else None
    return dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=payload if edns else None,
                                  want_dnssec=do and edns, options=options, id=ident).to_wire()


def recase(packet: bytes, flips: int) -> bytes:
    """The same query with the letters of its name in another case (as 0x20 resolvers send)."""
    out = bytearray(packet)
    end = packet.index(0, 12)
    for i in range(12, end):
        if chr(out[i]).isalpha() and flips >> (i % 16) & 1:
            out[i] ^= 0x20
    return bytes(out)


def taught(balancer: Balancer, packet: bytes, client: str) -> bool:
    """Let the native shapes learn the Python path's reply to a query, as the UDP loop does at first sight."""
    serving = balancer.serving
    prepared = serving.fast.lookup(packet, client, serving.locator.locate)
    return prepared is not None and serving.fast.native.learn(packet, client, prepared)


queries = st.fixed_dictionaries({
    "name": st.sampled_from(NAMES), "rdtype": st.sampled_from(["A", "AAAA", "MX"]), "subnet": st.sampled_from(SUBNETS),
    "edns": st.booleans(), "do": st.booleans(), "payload": st.sampled_from([512, 1232, 4096]),
    "client": st.sampled_from(CLIENTS), "flips": st.integers(0, 0xFFFF), "ident": st.integers(0, 65535),
    "seed": st.integers(0, 2**32),
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries)
def test_same_bytes_as_the_python_path_in_any_letter_case(balancer: Balancer, q: dict) -> None:
    serving = balancer.serving
    first = query(q["name"], q["rdtype"], q["subnet"], 1, q["edns"], q["do"], q["payload"])
    learnt = taught(balancer, first, q["client"])
    asked = recase(first, q["flips"])
    asked = q["ident"].to_bytes(2, "big") + asked[2:]
    shapes = serving.fast.native.process_shapes()
    ours = shapes.answer(asked, q["client"], random.Random(q["seed"]).random) or None  # False: missed before
    python = serving.fast.answer(asked, q["client"], serving.locator.locate, random.Random(q["seed"]))
    if ours is not None:
        assert ours == python  # the same bytes, the same draw
    elif python is not None:
        # the one shape the Python path takes and the native one leaves to it: a negative answer learnt in
        # another letter case (its SOA's owner follows the case); an answer is known in every case
        assert learnt and not dns.message.from_wire(python).answer and asked[2:] != first[2:]


def test_the_draws_come_from_the_same_source_in_the_same_order(balancer: Balancer) -> None:
    serving = balancer.serving
    packets = [query("deb.cdn.example.org", subnet=s) for s in SUBNETS if s is not None]
    for packet in packets:
        assert taught(balancer, packet, "127.0.0.1")
    shapes = serving.fast.native.process_shapes()
    ours, theirs = random.Random(7), random.Random(7)
    replies = set()
    for i in range(600):
        packet = i.to_bytes(2, "big") + packets[i % len(packets)][2:]
        reply = shapes.answer(packet, "127.0.0.1", ours.random)
        assert reply == serving.fast.answer(packet, "127.0.0.1", serving.locator.locate, theirs)
        replies.add(reply[2:])
    assert len(replies) > len(packets)  # several variants drawn: the draw is real, not a fixed reply
    assert ours.random() == theirs.random()  # one draw per answer on both sides


def mutations() -> st.SearchStrategy[tuple[int, list[tuple[int, int]], int, bytes]]:
    return st.tuples(st.integers(0, 5), st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=4),
                     st.integers(-20, 0), st.binary(max_size=8))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mutations(), seed=st.integers(0, 2**32))
def test_malformed_datagrams_never_crash_nor_get_what_python_refuses(balancer: Balancer, m: tuple, seed: int) -> None:
    serving = balancer.serving
    bases = [query("deb.cdn.example.org", subnet=("1.0.16.0", 24)), query("deb.cdn.example.org", edns=False),
             query("nosuch.cdn.example.org", subnet=("5.0.0.0", 16)), query("deb.cdn.example.org", "AAAA"),
             query("cdn.example.org"), query("deep.cdn.example.org", subnet=("2001:200:1::", 48))]
    for base in bases:
        taught(balancer, base, "127.0.0.1")
    which, edits, cut, tail = m
    packet = bytearray(bases[which])
    for offset, value in edits:
        if offset < len(packet):
            packet[offset] = value
    data = bytes(packet[: len(packet) + cut] if cut else packet) + tail
    shapes = serving.fast.native.process_shapes()
    ours = shapes.answer(data, "127.0.0.1", random.Random(seed).random)
    assert ours is None or ours is False or isinstance(ours, bytes) and ours
    if ours:
        python = serving.fast.answer(data, "127.0.0.1", serving.locator.locate, random.Random(seed))
        assert python is not None and ours == python


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_datagrams_are_never_answered_natively(balancer: Balancer, data: bytes) -> None:
    shapes = balancer.serving.fast.native.process_shapes()
    assert not shapes.answer(data, "127.0.0.1", random.random) or \
        balancer.serving.fast.answer(data, "127.0.0.1", balancer.serving.locator.locate, random.Random()) is not None


def test_a_shape_missed_twice_is_said_to_be_worth_learning(balancer: Balancer) -> None:
    shapes = balancer.serving.fast.native.process_shapes()
    packet = query("deb.cdn.example.org", subnet=("2.0.1.0", 24))
    assert shapes.answer(packet, "127.0.0.77", random.random) is None  # first sight: the Python path, no learning
    assert shapes.answer(recase(packet, 0xFFFF), "127.0.0.77", random.random) is False  # again, in any case
    assert taught(balancer, packet, "127.0.0.77")
    assert shapes.answer(packet, "127.0.0.77", random.random)


def test_odd_clients_and_arguments(balancer: Balancer) -> None:
    shapes = balancer.serving.fast.native.process_shapes()
    packet = query("deb.cdn.example.org")
    assert shapes.answer(packet, "not an address", random.random) is None
    assert not shapes.answer(b"", "127.0.0.1", random.random)
    assert taught(balancer, packet, "127.0.0.9")
    with pytest.raises(ZeroDivisionError):  # the random source's error reaches the caller
        shapes.answer(packet, "127.0.0.9", lambda: 1 / 0)
    with pytest.raises(IndexError):
        shapes.slot(10**6)


def counted_both_ways(serving: Serving, packets: list[bytes]) -> tuple[Totals, Totals]:
    """The same 300 queries (the packets in turn, the same draws) answered natively and by the Python path, each
    counted: what the native path drained into its QueryStats, and what the Python path counted."""
    path = serving.fast.native
    shapes = path.process_shapes()
    path.drain_into(QueryStats())  # counts of the other tests
    ours, theirs = QueryStats(), QueryStats()
    ours.feeders[id(path)] = path.drain_into
    draw_ours, draw_theirs = random.Random(3), random.Random(3)
    for i in range(300):
        packet = packets[i % len(packets)]
        assert shapes.answer(packet, "127.0.0.3", draw_ours.random)
        serving.fast.answer(packet, "127.0.0.3", serving.locator.locate, draw_theirs, False, theirs)
    return ours.take(), theirs.take()


def test_counts_are_the_python_paths(balancer: Balancer, tmp_path: Path) -> None:
    serving = balancer.serving
    packets = [query("deb.cdn.example.org", subnet=("1.0.16.0", 24)), query("deb.cdn.example.org", "AAAA"),
               query("nosuch.cdn.example.org", subnet=("5.0.0.0", 16))]
    for packet in packets:
        assert taught(balancer, packet, "127.0.0.3")
    mine, python = counted_both_ways(serving, packets)
    assert mine.queries == python.queries and sum(mine.queries.values()) == 300
    assert mine.ecs == python.ecs == 200
    assert mine.first == python.first and mine.answers == python.answers and mine.first


def test_the_table_build_makes_the_answer_table(tmp_path: Path, country_mmdb: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The balancer makes it with each table (serving/balancer.py), on the build's thread: the fork finds it made."""
    monkeypatch.delenv(native.ENVIRONMENT, raising=False)
    loaded, problems = load(make_config(tmp_path / "config", country_mmdb))
    assert loaded is not None, problems
    balancer = Balancer(loaded)
    path = balancer.serving.fast.native
    assert path.table is not None and path.built_in == os.getpid()
    balancer.complete()  # every pool's answers, as the supervisor computes them before forking the next answerers
    path = balancer.serving.fast.native
    assert len(path.table) == len(balancer.serving.compiled.answer_cache) > 0
    assert path.shapes is None  # the supervisor answers nothing: no shapes of its own
    monkeypatch.setenv(native.ENVIRONMENT, "0")
    balancer.regenerate()
    assert balancer.serving.fast.native.table is None  # switched off: not made


def test_the_answer_table_is_made_before_a_fork_and_shared(balancer: Balancer) -> None:
    """The supervisor makes the table before forking (process/supervisor.py); a child uses that one, starts
    shapes of its own, and never makes a table of its own for answer sets compiled after the fork."""
    serving = balancer.serving
    path = serving.fast.native
    path.ready()
    table, sets = path.table, len(path.table)
    assert sets == len(serving.compiled.answer_cache) > 0
    parent_shapes = path.process_shapes()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover  # the child reports through the pipe
        ok = False
        try:
            shapes = path.process_shapes()
            ok = path.table is table and shapes is not parent_shapes and len(path.table) == sets
            packet = query("deb.cdn.example.org", subnet=("1.0.16.0", 24))
            ok = ok and taught(balancer, packet, "127.0.0.4")
            ok = ok and bool(shapes.answer(packet, "127.0.0.4", random.random))
            # an answer set compiled after the fork is not added to a table of the child's own
            serving.compiled.answer_cache.clear()
            fresh = serving.fast.lookup(query("deb.cdn.example.org", "AAAA", ("5.0.0.0", 16)), "127.0.0.5",
                                        serving.locator.locate)
            ok = ok and fresh is not None and not path.learn(query("deb.cdn.example.org", "AAAA", ("5.0.0.0", 16)),
                                                             "127.0.0.5", fresh) and path.table is table
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    verdict = os.read(read, 1)
    os.close(read)
    os.waitpid(child, 0)
    assert verdict == b"1"


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.ENVIRONMENT, raising=False)
    assert native.describe()["path"] == "native" and native.active()
    monkeypatch.setenv(native.ENVIRONMENT, "0")
    assert not native.active() and native.describe() == {"path": "python", "why": f"{native.ENVIRONMENT}=0"}


# --- DO on a signed zone: the RRSIG of the drawn variant's set comes from the table's signed entries ---

SIGNED_NAMES = ["deb.cdn.example.org", "cdn.example.org", "nosuch.cdn.example.org", "deep.cdn.example.org",
                "a.b.cdn.example.org", "x.y.deep.cdn.example.org"]

signed_queries = st.fixed_dictionaries({
    "name": st.sampled_from(SIGNED_NAMES), "rdtype": st.sampled_from(["A", "AAAA"]),
    "subnet": st.sampled_from(SUBNETS), "do": st.sampled_from([True, True, True, False]),
    "payload": st.sampled_from([512, 1232, 4096]), "client": st.sampled_from(CLIENTS),
    "flips": st.integers(0, 0xFFFF), "ident": st.integers(0, 65535), "seed": st.integers(0, 2**32),
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=signed_queries)
def test_signed_do_queries_go_native_with_the_python_and_full_paths_bytes(signed_balancer: Balancer,
                                                                          q: dict) -> None:
    """Every DO query the Python path answers on a signed zone (answers with their set's RRSIG, NXDOMAIN and
    NODATA with their NSECs) is learnt, and the native reply is the Python path's and the full path's."""
    serving = signed_balancer.serving
    first = query(q["name"], q["rdtype"], q["subnet"], 1, True, q["do"], q["payload"])
    asked = q["ident"].to_bytes(2, "big") + first[2:]
    if q["flips"] & 1:  # the same case (negative answers are kept per letter case) or another one
        asked = recase(asked, q["flips"])
    prepared = serving.fast.lookup(first, q["client"], serving.locator.locate)
    shapes = serving.fast.native.process_shapes()
    if prepared is None:  # over the client's UDP size (a signed NXDOMAIN in 512 octets): the full path truncates
        assert not shapes.answer(asked, q["client"], random.random)
        signed_balancer.rng = random.Random(q["seed"])
        assert dns.message.from_wire(bytes(signed_balancer.full(serving, asked, q["client"], tcp=False))).flags \
            & dns.flags.TC
        return
    assert serving.fast.native.learn(first, q["client"], prepared)
    hits = shapes.hits()
    ours = shapes.answer(asked, q["client"], random.Random(q["seed"]).random) or None
    python = serving.fast.answer(asked, q["client"], serving.locator.locate, random.Random(q["seed"]))
    signed_balancer.rng = random.Random(q["seed"])
    full = bytes(signed_balancer.full(serving, asked, q["client"], tcp=False))
    parsed = dns.message.from_wire(full)
    if ours is None:  # only a negative answer asked in another letter case than it was learnt in
        assert not parsed.answer and asked[2:] != first[2:] and shapes.hits() == hits
        return
    assert ours == python and shapes.hits() == hits + 1
    if parsed.answer:
        assert ours == full  # answers: the same bytes as the full path
        rrsigs = [r for r in parsed.answer if r.rdtype == dns.rdatatype.RRSIG]
        assert len(rrsigs) == (1 if q["do"] else 0)
    else:  # negative answers: the same records (the full path compresses the SOA's names, the fast path not)
        assert dns.message.from_wire(ours) == parsed
        if q["do"]:
            assert any(r.rdtype == dns.rdatatype.NSEC for r in parsed.authority)


def signed_keys(balancer: Balancer) -> dns.rrset.RRset:
    packet = dns.message.make_query("cdn.example.org", "DNSKEY", want_dnssec=True).to_wire()
    return dns.message.from_wire(bytes(balancer.full(balancer.serving, packet, "127.0.0.1", tcp=False))).answer[0]


def test_signed_do_answers_from_several_regions_and_variants_validate(signed_balancer: Balancer) -> None:
    """Per region (client subnet), A and AAAA with DO, many draws: each native reply is the Python path's for
    the same draw, carries the RRSIG of its variant's set, validates against the zone's DNSKEY; NXDOMAIN and
    NODATA too; and the draws cover several sets, so the RRSIG really follows the variant."""
    serving = signed_balancer.serving
    path = serving.fast.native
    shapes = path.process_shapes()
    zone = dns.name.from_text("cdn.example.org")
    keys = signed_keys(signed_balancer)
    ours, theirs = random.Random(5), random.Random(5)
    sets_seen, signatures_seen, regions = set(), set(), set()
    for subnet in [s for s in SUBNETS if s is not None]:
        for rdtype in ("A", "AAAA"):
            packet = query("deb.cdn.example.org", rdtype, subnet, do=True)
            assert taught(signed_balancer, packet, "127.0.0.1")
            for i in range(40):
                asked = i.to_bytes(2, "big") + packet[2:]
                reply = shapes.answer(asked, "127.0.0.1", ours.random)
                assert reply and reply == serving.fast.answer(asked, "127.0.0.1", serving.locator.locate, theirs)
                message = dns.message.from_wire(reply)
                answer = next(r for r in message.answer if r.rdtype == dns.rdatatype.from_text(rdtype))
                sig = next(r for r in message.answer if r.rdtype == dns.rdatatype.RRSIG)
                dns.dnssec.validate(answer, sig, {zone: keys})
                sets_seen.add(frozenset(str(r) for r in answer))
                signatures_seen.add(sig[0].signature)
                regions.add((rdtype, tuple(sorted(str(r) for r in answer))))
    assert ours.random() == theirs.random()  # one draw per answer on both sides
    assert len(sets_seen) > 2 and len(signatures_seen) == len(sets_seen)  # one signature per distinct set
    for name, rdtype, rcode in (("nosuch.cdn.example.org", "A", dns.rcode.NXDOMAIN),
                                ("x.y.deep.cdn.example.org", "AAAA", dns.rcode.NXDOMAIN),
                                ("deep.cdn.example.org", "A", dns.rcode.NOERROR)):
        packet = query(name, rdtype, ("1.0.16.0", 24), do=True)
        assert taught(signed_balancer, packet, "127.0.0.1")
        before = shapes.hits()
        reply = shapes.answer(packet, "127.0.0.1", random.random)
        assert reply and shapes.hits() == before + 1  # answered natively
        assert reply == serving.fast.answer(packet, "127.0.0.1", serving.locator.locate, random.Random())
        message = dns.message.from_wire(reply)
        assert message.rcode() == rcode and not message.answer
        nsecs = [r for r in message.authority if r.rdtype == dns.rdatatype.NSEC]
        assert nsecs
        for rrset in message.authority:
            if rrset.rdtype != dns.rdatatype.RRSIG:
                sig = next(r for r in message.authority if r.rdtype == dns.rdatatype.RRSIG and r.name == rrset.name
                           and r.covers == rrset.rdtype)
                dns.dnssec.validate(rrset, sig, {zone: keys})


def test_signed_do_counts_are_the_python_paths(signed_balancer: Balancer) -> None:
    serving = signed_balancer.serving
    packets = [query("deb.cdn.example.org", subnet=("1.0.16.0", 24), do=True),
               query("deb.cdn.example.org", "AAAA", do=True),
               query("nosuch.cdn.example.org", subnet=("5.0.0.0", 16), do=True)]
    for packet in packets:
        assert taught(signed_balancer, packet, "127.0.0.3")
    mine, python = counted_both_ways(serving, packets)
    assert mine.queries == python.queries and sum(mine.queries.values()) == 300
    assert mine.first == python.first and mine.answers == python.answers and mine.first


def test_the_signed_entries_are_made_with_the_table_and_kept_on_a_rebuild(signed_balancer: Balancer) -> None:
    """One entry per (owner name, answer set) signed, made with the answer table (before a fork); a table built
    again (more answer sets) keeps them at their indices, so the shapes learnt before still answer."""
    serving = signed_balancer.serving
    path = serving.fast.native
    path.ready()
    signatures = serving.compiled.signatures
    assert signatures is not None and path.table.signed() == len(signatures.sets) > 0
    packet = query("deb.cdn.example.org", subnet=("2.0.1.0", 24), do=True)
    assert taught(signed_balancer, packet, "127.0.0.8")
    shapes = path.process_shapes()
    old = path.table
    path.built_from = -1  # as if answer sets had been compiled since: built again
    path.ready()
    assert path.table is not old and path.table.signed() == old.signed()
    reply = shapes.answer(packet, "127.0.0.8", random.Random(1).random)
    assert reply == serving.fast.answer(packet, "127.0.0.8", serving.locator.locate, random.Random(1))
    assert len(path.signed) == len(signatures.sets)  # not appended twice


def test_bad_signed_entries_are_refused_with_a_clear_error(signed_balancer: Balancer) -> None:
    from array import array
    assert native._native is not None
    sets = list(signed_balancer.serving.compiled.answer_cache.values())
    answers = sets[0]
    numbers, width = answers.variants.sets, max(answers.variants.sets) + 1
    records = tuple(b"x" * 20 for _ in range(width))
    native._native.AnswerTable(sets, [(0, numbers, records)])  # well formed
    with pytest.raises(IndexError):
        native._native.AnswerTable(sets, [(len(sets), numbers, records)])
    with pytest.raises(ValueError):
        native._native.AnswerTable(sets, [(0, array("I", [0] * (len(answers) + 1)), records)])
    with pytest.raises(ValueError):
        native._native.AnswerTable(sets, [(0, numbers, records[:-1])])  # a variant's set without its record
    with pytest.raises(TypeError):
        native._native.AnswerTable(sets, [(0, array("d", [0.0] * len(answers)), records)])
    with pytest.raises(TypeError):
        native._native.AnswerTable(sets, [(0, numbers, ("not bytes",) * width)])
    with pytest.raises(TypeError):
        native._native.AnswerTable(sets, [(0, numbers)])
    table = native._native.AnswerTable(sets, [(0, numbers, records)])
    shapes = native._native.Shapes(table)
    slot = shapes.slot(1 if len(sets) > 1 else 0)
    with pytest.raises(IndexError):  # a signed entry of another answer set
        shapes.learn(query("deb.cdn.example.org"), "127.0.0.1", 1, slot, [], b"", b"", 0)
    with pytest.raises(IndexError):
        shapes.learn(query("deb.cdn.example.org"), "127.0.0.1", 0, slot, [], b"", b"", 5)
    with pytest.raises(ValueError):  # shapes refer to signed entries by index: a table without them is refused
        shapes.retable(native._native.AnswerTable(sets))
