"""The answer core in process: (query, location, active table, rng) -> reply, without a socket in sight."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from random import Random

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from dnsbalance.answer.respond import Reply, respond
from dnsbalance.geo.locate import UNKNOWN, Location
from dnsbalance.ranking.active import ActiveTable
from tests.harness import fixture_table

ZONE = "cdn.example.org"
JP = Location("JP", "AS", 20)
# tests/fixtures/zone: country/JP.yaml and default.yaml for "deb", and the drained mirror's address.
JP_WEIGHTS = {"192.0.2.1": 9000, "192.0.2.2": 6000, "192.0.2.3": 3000, "192.0.2.4": 1000}
DEFAULT_ADDRESSES = {"203.0.113.1", "203.0.113.2"}
DRAINED_ADDRESS = "192.0.2.5"


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> ActiveTable:
    return fixture_table(tmp_path_factory.mktemp("respond") / "config", country_mmdb)


def ask(table: ActiveTable, name: str, qtype: str = "A", *, location: Location = UNKNOWN, rd: bool = True,
        opcode: int = 0, rng: Random | None = None) -> DNSRecord:
    """The reply as a client would read it: packed by the core's records, parsed back."""
    query = DNSRecord.question(name, qtype)
    query.header.rd = int(rd)
    query.header.opcode = opcode
    packet = query.pack()
    reply: Reply = respond(DNSRecord.parse(packet), location, table, rng or Random(7), packet=packet)
    parsed = DNSRecord.parse(reply.record.pack())
    assert parsed.header.rcode == int(reply.rcode) & 0xF
    return parsed


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


@pytest.mark.parametrize("rd", [True, False])
def test_header_flags(table: ActiveTable, rd: bool) -> None:
    reply = ask(table, f"deb.{ZONE}", rd=rd)
    assert reply.header.qr == 1
    assert reply.header.aa == 1
    assert reply.header.ra == 0
    assert reply.header.rd == int(rd)
    assert reply.header.rcode == RCODE.NOERROR


def test_jp_answers_from_the_jp_table(table: ActiveTable) -> None:
    for seed in range(50):
        reply = ask(table, f"deb.{ZONE}", location=JP, rng=Random(seed))
        found = addresses(reply)
        assert 1 <= len(found) <= 3  # answers: 3 in dnsbalance.yaml; answer sets carry fewer (issue 11)
        assert len(set(found)) == len(found)
        assert set(found) <= set(JP_WEIGHTS)
        assert all(rr.ttl == 30 for rr in reply.rr)


def test_unknown_location_answers_from_default(table: ActiveTable) -> None:
    for seed in range(20):
        found = addresses(ask(table, f"deb.{ZONE}", location=UNKNOWN, rng=Random(seed)))
        assert sorted(found) == sorted(DEFAULT_ADDRESSES)  # two mirrors, both answered


def test_missing_name_is_nxdomain_with_soa(table: ActiveTable) -> None:
    reply = ask(table, f"nothere.{ZONE}")
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert reply.header.aa == 1
    assert reply.rr == []
    assert [rr.rtype for rr in reply.auth] == [QTYPE.SOA]
    assert str(reply.auth[0].rname).rstrip(".") == ZONE
    assert reply.auth[0].ttl == 45  # min(SOA ttl, minimum), RFC 2308


def test_existing_name_other_type_is_nodata(table: ActiveTable) -> None:
    reply = ask(table, f"deb.{ZONE}", "TXT")
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.header.aa == 1
    assert reply.rr == []
    assert [rr.rtype for rr in reply.auth] == [QTYPE.SOA]


def test_empty_non_terminal_is_nodata_not_nxdomain(table: ActiveTable) -> None:
    reply = ask(table, f"deep.{ZONE}")  # default.yaml has _sub.deep (RFC 8020)
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []


def test_outside_the_zone_is_refused(table: ActiveTable) -> None:
    reply = ask(table, "www.example.com")
    assert reply.header.rcode == RCODE.REFUSED
    assert reply.header.aa == 0
    assert reply.rr == [] and reply.auth == []
    assert str(reply.q.qname) == "www.example.com."


@pytest.mark.parametrize("opcode", [1, 2, 4, 5])  # IQUERY, STATUS, NOTIFY, UPDATE
def test_other_opcode_is_notimp(table: ActiveTable, opcode: int) -> None:
    reply = ask(table, f"deb.{ZONE}", opcode=opcode)
    assert reply.header.rcode == RCODE.NOTIMP
    assert reply.header.opcode == opcode
    assert reply.rr == []


def test_drained_mirror_never_answered(table: ActiveTable) -> None:
    rng = Random(11)
    seen: set[str] = set()
    for _ in range(3000):
        seen.update(addresses(ask(table, f"deb.{ZONE}", location=JP, rng=rng)))
    assert DRAINED_ADDRESS not in seen
    assert seen == set(JP_WEIGHTS)  # and every weighted mirror does turn up


def test_same_seed_same_answers(table: ActiveTable) -> None:
    def run(seed: int) -> list[list[str]]:
        rng = Random(seed)
        return [addresses(ask(table, f"deb.{ZONE}", location=JP, rng=rng)) for _ in range(200)]

    assert run(5) == run(5)
    assert run(5) != run(6)  # and the seed does matter


def test_first_address_follows_the_weights(table: ActiveTable) -> None:
    draws = 20_000
    rng = Random(2024)
    query = DNSRecord.question(f"deb.{ZONE}", "A")
    firsts: Counter[str] = Counter()
    for _ in range(draws):
        reply = respond(query, JP, table, rng)
        firsts[str(reply.record.rr[0].rdata)] += 1
    total = sum(JP_WEIGHTS.values())
    for address, weight in JP_WEIGHTS.items():
        # one standard deviation is at most 0.0036 here; 0.02 is over five of them
        assert firsts[address] / draws == pytest.approx(weight / total, abs=0.02), firsts
    assert firsts[DRAINED_ADDRESS] == 0
