"""The answer pipeline's stages in process: each one on a query context, and the chain as the server runs it."""
from __future__ import annotations

import dataclasses
import random
import struct
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from dnsbalance.answer.ratelimit import RateLimiter
from dnsbalance.configuration.model import RRLSettings
from dnsbalance.pipeline.pipeline import Pipeline
from dnsbalance.pipeline.query import Query
from dnsbalance.pipeline.stages import STAGES, count, edns_cookie, locate, parse, rate_limit
from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import load
from dnsbalance.serving.snapshot import Serving
from dnsbalance.stats.counters import QueryStats
from tests.harness import make_config

ZONE = "cdn.example.org"


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Balancer:
    folder = make_config(tmp_path_factory.mktemp("pipeline") / "config", country_mmdb)
    settings = folder / "dnsbalance.yaml"
    settings.write_text(settings.read_text() + "cookies: true\n")
    loaded, problems = load(folder)
    assert loaded is not None, problems
    return Balancer(loaded)


def fresh(balancer: Balancer, serving: Serving | None = None) -> Pipeline:
    """A pipeline of its own (counters, random source) over the balancer's snapshot."""
    return Pipeline(lambda: serving or balancer.serving, QueryStats(), random.Random(1))


def context(pipeline: Pipeline, packet: bytes, client: str = "127.0.0.1", tcp: bool = False) -> Query:
    return Query(pipeline, pipeline.source(), packet, client, tcp)


def ask(name: str, rdtype: str = "A", **options: object) -> bytes:
    return dns.message.make_query(name, rdtype, **options).to_wire()  # type: ignore[arg-type]


def test_the_stages_are_named_in_one_order() -> None:
    assert [stage.__name__ for stage in STAGES] == ["parse", "edns_cookie", "rate_limit", "locate", "answer",
                                                    "sign", "count", "pack"]


def test_parse_answers_formerr_from_the_header_alone(balancer: Balancer) -> None:
    pipeline = fresh(balancer)
    query = context(pipeline, struct.pack("!HHHHHH", 77, 0x0100, 1, 0, 0, 0) + b"\x03deb")
    assert not parse(query)
    assert query.wire == struct.pack("!HHHHHH", 77, 0x8101, 0, 0, 0, 0)
    assert pipeline.stats.take().events.get("formerr") == 1


@pytest.mark.parametrize("packet", [b"\x00\x01", struct.pack("!HHHHHH", 80, 0x8100, 0, 0, 0, 0)])
def test_parse_stays_silent_on_responses_and_scraps(balancer: Balancer, packet: bytes) -> None:
    query = context(fresh(balancer), packet)
    assert not parse(query)
    assert query.wire is None


def test_edns_marks_a_malformed_option_for_formerr(balancer: Balancer) -> None:
    packet = bytearray(ask(f"deb.{ZONE}", use_edns=0))
    option = struct.pack("!HHHBB", 8, 7, 1, 20, 0) + b"\x01\x00\x11"  # bits set past the /20
    packet[-2:] = struct.pack("!H", len(option))
    query = context(fresh(balancer), bytes(packet) + option)
    assert parse(query) and edns_cookie(query)
    assert query.malformed
    assert all(stage(query) for stage in STAGES[2:])
    assert dns.message.from_wire(bytes(query.wire or b"")).rcode() == dns.rcode.FORMERR


def test_edns_answers_a_malformed_cookie_at_once(balancer: Balancer) -> None:
    query = context(fresh(balancer), ask(f"deb.{ZONE}", use_edns=0,
                                         options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345")]))
    assert parse(query)
    assert not edns_cookie(query)
    assert dns.message.from_wire(bytes(query.wire or b"")).rcode() == dns.rcode.FORMERR


def test_a_server_cookie_we_issued_proves_the_source(balancer: Balancer) -> None:
    pipeline = fresh(balancer)
    client_cookie = b"abcdefgh"
    issued = balancer.serving.cookies.check(client_cookie, "127.0.0.1", int(pipeline.clock())).option
    query = context(pipeline, ask(f"deb.{ZONE}", use_edns=0, options=[dns.edns.CookieOption(issued[:8], issued[8:])]))
    assert parse(query) and edns_cookie(query)
    assert query.proven and query.cookie is not None and query.cookie[:8] == client_cookie


def test_rate_limit_drops_then_slips_over_udp_only(balancer: Balancer) -> None:
    limited = dataclasses.replace(balancer.serving, limiter=RateLimiter(RRLSettings(True, 1, 2)))
    pipeline = fresh(balancer, limited)
    outcomes = []
    for _ in range(4):
        query = context(pipeline, ask(f"deb.{ZONE}"))
        outcomes.append((rate_limit(query), query.slip))
    assert outcomes[0] == (True, False)  # within the budget
    assert (False, False) in outcomes and (True, True) in outcomes  # dropped, and slipped (TC)
    tcp = context(pipeline, ask(f"deb.{ZONE}"), tcp=True)
    assert rate_limit(tcp) and not tcp.slip
    slipped = pipeline.full(limited, ask(f"deb.{ZONE}"), "127.0.0.1", False, slip=True)
    assert slipped is not None and dns.message.from_wire(bytes(slipped)).flags & dns.flags.TC


def test_locate_by_client_subnet(balancer: Balancer) -> None:
    query = context(fresh(balancer), ask(f"deb.{ZONE}", use_edns=0, options=[dns.edns.ECSOption("1.0.16.0", 24)]))
    assert parse(query) and edns_cookie(query) and locate(query)
    assert query.location is not None and query.location.country == "JP"
    assert query.scope == 20 and query.subnet is not None and query.subnet.source == 24


def test_count_keeps_the_same_record_as_the_fast_path(balancer: Balancer) -> None:
    """A query answered by the fast path and the same one through every stage count the same."""
    packet = ask(f"deb.{ZONE}", use_edns=0, options=[dns.edns.ECSOption("1.0.16.0", 24)])
    fast, full = fresh(balancer), fresh(balancer)
    prepared = balancer.serving.fast.lookup(packet, "127.0.0.1", balancer.serving.locator.locate, False,
                                            QueryStats())
    assert prepared is not None
    query = context(full, packet)
    for stage in STAGES[:-2]:
        assert stage(query)
    assert count(query)
    assert query.tally == prepared.tally
    assert query.tally is not None and query.tally.answer == ("country JP", "deb", "A")
    fast.handle(packet, "127.0.0.1", False)
    assert fast.stats.take().queries == full.stats.take().queries


def test_handle_takes_the_fast_path_then_the_stages(balancer: Balancer) -> None:
    pipeline = fresh(balancer)
    common = pipeline.handle(ask(f"deb.{ZONE}"), "127.0.0.1", False)
    odd = pipeline.handle(ask(f"deb.{ZONE}", "MX"), "127.0.0.1", False)
    assert common is not None and odd is not None
    assert dns.message.from_wire(bytes(common)).answer and not dns.message.from_wire(bytes(odd)).answer
    assert sum(pipeline.stats.take().queries.values()) == 2


def test_a_pinned_pipeline_keeps_its_snapshot(balancer: Balancer) -> None:
    pinned = balancer.pipeline.pinned(balancer.serving)
    before = balancer.serving
    balancer.regenerate()
    assert pinned.source() is before and balancer.pipeline.source() is balancer.serving
    assert pinned.stats is balancer.stats  # one set of counters, sent up by the answering process
