"""apt's SRV sets (issue 23 item 6), in process: `_http._tcp.NAME` and `_https._tcp.NAME` from the same tables,
health and weights as NAME's A/AAAA answers, targets `<mirror>.mirror.NAME` the zone answers itself."""
from __future__ import annotations

from pathlib import Path
from random import Random
from types import MappingProxyType

from dnslib import QTYPE, RCODE, DNSRecord

from dnsbalance.answer.respond import respond
from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import Config
from dnsbalance.configuration.web_services import apt_records, web_port
from dnsbalance.geo.locate import UNKNOWN, Location
from dnsbalance.ops.explain import explain
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.build import build_table, srv_weight
from dnsbalance.health.view import HealthView

ZONE = "cdn.example.org"
JP = Location("JP", "AS", 20)
SETTINGS = f"""\
zone: {ZONE}
nameservers: {{ns1.{ZONE}: [192.0.2.53]}}
soa: {{rname: hostmaster.example.org}}
"""
MIRRORS = """\
mirrors:
  alpha: {addresses: [192.0.2.1, "2001:db8::1"], url: "http://alpha.example.org/debian/"}
  beta: {addresses: [192.0.2.2], url: "https://beta.example.org:8443/debian/"}
  gamma: {addresses: [192.0.2.3], url: "http://gamma.example.org:8080/debian/"}
  delta: {addresses: [192.0.2.4]}
  tokyo: {addresses: [192.0.2.10, "2001:db8::10"], url: "https://tokyo.example.jp/debian/"}
  osaka: {addresses: [192.0.2.11]}
"""
DEFAULT = "deb:\n  alpha: 9000\n  beta: 8000\n  gamma: 5000\n  delta: 10000\n"
JP_TABLE = "deb:\n  tokyo: 0\n  osaka: 5000\n"


def load(tmp_path: Path, settings: str = SETTINGS) -> Config:
    target = tmp_path / "config"
    (target / "country").mkdir(parents=True)
    (target / "dnsbalance.yaml").write_text(settings)
    (target / "mirrors.yaml").write_text(MIRRORS)
    (target / "default.yaml").write_text(DEFAULT)
    (target / "country" / "JP.yaml").write_text(JP_TABLE)
    config, problems = check_config(target)
    assert config is not None, [str(p) for p in problems]
    return config


def up(config: Config) -> ActiveTable:
    """The table once every probed mirror is judged up."""
    return build_table(config, HealthView(MappingProxyType({m: True for m in config.mirrors})), 1, 1)


def ask(table: ActiveTable, name: str, qtype: str = "SRV", location: Location = UNKNOWN,
        rng: Random | None = None) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    packet = query.pack()
    reply = respond(DNSRecord.parse(packet), location, table, rng or Random(3), packet=packet)
    return DNSRecord.parse(reply.record.pack())


def srv_set(reply: DNSRecord) -> dict[str, tuple[int, int]]:
    """target -> (weight, port); the priorities are the ranks of a weighted order (see the last tests)"""
    records = [rr.rdata for rr in reply.rr if rr.rtype == QTYPE.SRV]
    assert sorted(r.priority for r in records) == list(range(len(records)))
    return {str(r.target): (r.weight, r.port) for r in records}


def test_http_set_is_every_usable_mirror_weighted_with_its_port(tmp_path: Path) -> None:
    table = up(load(tmp_path))
    reply = ask(table, f"_http._tcp.deb.{ZONE}")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa
    # delta is drained (priority 10000): absent; weights are 10000 - priority scaled into 16 bits
    assert srv_set(reply) == {f"alpha.mirror.deb.{ZONE}.": (srv_weight(1000), 80),
                              f"beta.mirror.deb.{ZONE}.": (srv_weight(2000), 80),
                              f"gamma.mirror.deb.{ZONE}.": (srv_weight(5000), 8080)}
    # every target's addresses in the additional section
    glue = sorted((str(rr.rname), str(rr.rdata)) for rr in reply.ar)
    assert glue == [(f"alpha.mirror.deb.{ZONE}.", "192.0.2.1"), (f"alpha.mirror.deb.{ZONE}.", "2001:db8::1"),
                    (f"beta.mirror.deb.{ZONE}.", "192.0.2.2"), (f"gamma.mirror.deb.{ZONE}.", "192.0.2.3")]


def test_https_set_is_the_https_mirrors_on_their_port(tmp_path: Path) -> None:
    table = up(load(tmp_path))
    assert srv_set(ask(table, f"_https._tcp.deb.{ZONE}")) == {f"beta.mirror.deb.{ZONE}.": (srv_weight(2000), 8443)}
    assert srv_set(ask(table, f"_https._tcp.deb.{ZONE}", location=JP)) == {
        f"tokyo.mirror.deb.{ZONE}.": (srv_weight(10000), 443)}
    assert web_port(None, "_http._tcp") == 80 and web_port(None, "_https._tcp") is None
    assert web_port("rsync://x/debian/", "_http._tcp") == 80


def test_the_client_region_picks_the_set_and_the_scope_says_so(tmp_path: Path) -> None:
    table = up(load(tmp_path))
    assert srv_set(ask(table, f"_http._tcp.deb.{ZONE}", location=JP)) == {
        f"tokyo.mirror.deb.{ZONE}.": (srv_weight(10000), 80), f"osaka.mirror.deb.{ZONE}.": (srv_weight(5000), 80)}
    # answers that depend on the client echo a non-zero ECS scope, as deb's A answers do; the targets do not
    assert table.client_dependent("_http._tcp.deb", QTYPE.SRV) and table.client_dependent("deb", QTYPE.A)
    assert not table.client_dependent("tokyo.mirror.deb", QTYPE.A)


def test_a_down_mirror_is_absent_and_a_dead_address_is_not_answered(tmp_path: Path) -> None:
    config = load(tmp_path, SETTINGS)  # the defaults: each address on its own verdict, the balanced name as Host
    health = HealthView(MappingProxyType({"alpha": True, "beta": False, "gamma": True, "tokyo": True,
                                          f"alpha@2001:db8::1#deb.{ZONE}": False}))
    table = build_table(config, health, 1, 1)
    reply = ask(table, f"_http._tcp.deb.{ZONE}")
    assert set(srv_set(reply)) == {f"alpha.mirror.deb.{ZONE}.", f"gamma.mirror.deb.{ZONE}."}
    assert f"beta.mirror.deb.{ZONE}." not in {str(rr.rname) for rr in reply.ar}
    assert [str(rr.rdata) for rr in reply.ar if str(rr.rname).startswith("alpha.")] == ["192.0.2.1"]
    # the target answers only alpha's served address: its dead IPv6 is NODATA
    target = f"alpha.mirror.deb.{ZONE}"
    assert [str(rr.rdata) for rr in ask(table, target, "A").rr] == ["192.0.2.1"]
    aaaa = ask(table, target, "AAAA")
    assert aaaa.header.rcode == RCODE.NOERROR and not aaaa.rr and aaaa.auth[0].rtype == QTYPE.SOA
    # the SRV set follows the A pool: beta is left out of both for the same reason
    left = {x.target for x in table.default.left_out[("deb", QTYPE.A)]}
    assert "beta" in left and "delta" in left
    # every mirror down: the set fails open with the configured (undrained) mirrors, as deb's A answers do
    table = build_table(config, HealthView(MappingProxyType({m: False for m in config.mirrors})), 1, 1)
    assert set(srv_set(ask(table, f"_http._tcp.deb.{ZONE}"))) == {
        f"{m}.mirror.deb.{ZONE}." for m in ("alpha", "beta", "gamma")}


def test_other_types_are_nodata_and_targets_exist(tmp_path: Path) -> None:
    table = up(load(tmp_path))
    for name, qtype in ((f"_http._tcp.deb.{ZONE}", "A"), (f"_tcp.deb.{ZONE}", "SRV"),
                        (f"mirror.deb.{ZONE}", "A"), (f"beta.mirror.deb.{ZONE}", "TXT")):
        reply = ask(table, name, qtype)
        assert reply.header.rcode == RCODE.NOERROR and not reply.rr, name
    assert [str(rr.rdata) for rr in ask(table, f"Beta.Mirror.DEB.{ZONE}", "A").rr] == ["192.0.2.2"]
    # a drained mirror's target still exists (a resolver never caches an NXDOMAIN for a set it may join)
    assert ask(table, f"delta.mirror.deb.{ZONE}", "A").header.rcode == RCODE.NOERROR
    assert ask(table, f"nobody.mirror.deb.{ZONE}", "A").header.rcode == RCODE.NXDOMAIN
    assert ask(table, f"_http._tcp.nothing.{ZONE}").header.rcode == RCODE.NXDOMAIN
    # ANY at the owner: the SRV set (RFC 8482: one RRset)
    assert srv_set(ask(table, f"_http._tcp.deb.{ZONE}", "ANY"))


def test_a_table_name_shaped_like_an_srv_owner_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.mkdir()
    (target / "dnsbalance.yaml").write_text(SETTINGS)
    (target / "mirrors.yaml").write_text(MIRRORS)
    (target / "default.yaml").write_text(DEFAULT + "_http._tcp.www:\n  alpha: 10\nalpha.mirror.deb:\n  beta: 10\n")
    _, problems = check_config(target)
    said = [str(p) for p in problems]
    assert any("default.yaml:6" in p and "_http._tcp.www" in p for p in said), said
    assert any("default.yaml:8" in p and "alpha.mirror.deb" in p for p in said), said


def test_explain_shows_the_set(tmp_path: Path) -> None:
    config = load(tmp_path)
    lines = explain(config, up(config), JP, f"_http._tcp.deb.{ZONE}")
    assert "SRV: answered from the country JP table, usable entries" in lines
    assert any(line.split()[:3] == ["tokyo", str(srv_weight(10000)), "80"] and "tokyo.mirror.deb: 192.0.2.10" in line
               for line in lines), lines
    assert not any("each answer carries" in line for line in lines)  # two fit


def test_the_first_priority_follows_the_weights(tmp_path: Path) -> None:
    """apt ignores SRV weights and picks at random among the lowest priority (srvrec.cc, PopFromSrvRecs): each
    answer writes a weighted random order as priorities 0, 1, 2, ..., so apt's first choice follows the weights
    and its fallbacks come in weighted order."""
    table = up(load(tmp_path))
    rng = Random(11)
    firsts: dict[str, int] = {}
    rounds = 4000
    for _ in range(rounds):
        records = [rr.rdata for rr in ask(table, f"_http._tcp.deb.{ZONE}", rng=rng).rr]
        first = str(min(records, key=lambda r: r.priority).target).split(".")[0]
        firsts[first] = firsts.get(first, 0) + 1
    weights = {"alpha": 1000, "beta": 2000, "gamma": 5000}  # delta drained
    total = sum(weights.values())
    assert set(firsts) == set(weights)
    for name, weight in weights.items():
        expected = rounds * weight / total
        assert abs(firsts[name] - expected) < 4 * (expected * (1 - weight / total)) ** 0.5, (name, firsts)


def test_an_apt_set_fits_apts_512_byte_buffer_and_its_first_choice_keeps_every_weight(tmp_path: Path) -> None:
    """apt reads the SRV answer into 512 bytes (srvrec.cc); a longer one loses apt's sort by priority, and with it
    the weights (tests/system/test_apt_real.py). Twenty mirrors: the answer keeps the prefix of its weighted order
    whose answer section a resolver's reply (targets uncompressed) ends within 512 bytes; every mirror can be
    first."""
    import dns.message
    import dns.rrset

    target = tmp_path / "config"
    target.mkdir()
    (target / "dnsbalance.yaml").write_text(SETTINGS)
    (target / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        f"  mirror{i:02d}: {{addresses: [192.0.2.{i + 1}]}}\n" for i in range(20)))
    # mirror19 weighs 9000, the 19 others 100 each
    (target / "default.yaml").write_text("deb:\n" + "".join(
        f"  mirror{i:02d}: {1000 if i == 19 else 9900}\n" for i in range(20)))
    config, problems = check_config(target)
    assert config is not None, [str(p) for p in problems]
    table = up(config)
    owner = f"_http._tcp.deb.{ZONE}"
    rng = Random(5)
    firsts: dict[str, int] = {}
    rounds = 2000
    for _ in range(rounds):
        reply = ask(table, owner, rng=rng)
        records = [rr.rdata for rr in reply.rr]
        # 512 - header 12 - question 36 leaves 464 bytes; a record is 2 + 10 + 6 + 37 (the target) = 55
        assert sorted(r.priority for r in records) == list(range(8))
        assert {str(rr.rname) for rr in reply.ar} == {str(r.target) for r in records}  # glue for those only
        first = str(min(records, key=lambda r: r.priority).target).split(".")[0]
        firsts[first] = firsts.get(first, 0) + 1
    # as a resolver writes the answer to glibc (dnspython: owner compressed, SRV target not, as RFC 2782 says)
    resolver = dns.message.make_response(dns.message.make_query(owner + ".", "SRV", use_edns=0))
    resolver.answer.append(dns.rrset.from_text_list(owner + ".", 60, "IN", "SRV", [
        f"{r.priority} {r.weight} {r.port} {r.target}" for r in records]))
    assert len(resolver.to_wire()) <= 512
    assert len(firsts) > 15  # mirrors listed last in the configuration are first too
    said = explain(config, table, UNKNOWN, owner[: -len(ZONE) - 1])
    assert "  each answer carries 8 of these 20: the first of its weighted order, as many as fit the 512 bytes " \
           "apt reads (the first is drawn from all of them)" in said, said
    expected = rounds * 9000 / 10900
    assert abs(firsts["mirror19"] - expected) < 4 * (expected * (1 - 9000 / 10900)) ** 0.5, firsts


def test_apt_records_end_the_answer_section_within_512_bytes() -> None:
    """Header 12, question 32 + 4, records 18 + the target: nine 33-byte targets end at byte 507 (a real apt read
    all nine behind unbound, with and without EDNS), nine 34-byte ones at 516."""
    def labels(name: str) -> tuple[bytes, ...]:
        return tuple(label.encode() for label in name.split("."))

    owner = labels(f"_http._tcp.deb.{ZONE}")
    assert apt_records(owner, [labels(f"m{i:03d}.mirror.deb.{ZONE}") for i in range(12)]) == 9
    assert apt_records(owner, [labels(f"m{i:04d}.mirror.deb.{ZONE}") for i in range(12)]) == 8
    assert apt_records(owner, [labels(f"m{i:03d}.mirror.deb.{ZONE}") for i in range(3)]) == 3
    longest = labels("x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "." + "w" * 60)  # 254 bytes in wire form
    assert apt_records(owner, [longest] * 2) == 1
    assert apt_records(longest, [longest] * 2) == 1  # none fits: one all the same (the reply goes out over TCP)
