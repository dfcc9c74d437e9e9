"""DNSSEC in process: keys and DS, signatures made once per table (a cache by RRset content), and every
signed answer the server hands out validated by dnspython's dns.dnssec.validate against the zone's DNSKEY."""
from __future__ import annotations

import os
import time
from pathlib import Path
from random import Random

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from dnslib import DNSRecord

from dnsbalance.answer.respond import respond
from dnsbalance.compiler.table import compiled
from dnsbalance.configuration.model import Algorithm, DNSSECSettings
from dnsbalance.configuration.problems import Severity
from dnsbalance.dnssec.keys import KeyProblem, SigningKey, ds_line, keygen, load
from dnsbalance.dnssec.signer import Cached, Signer, window_at
from dnsbalance.geo.locate import UNKNOWN, Location
from dnsbalance.protocol.codes import TCP_SIZE, RType
from dnsbalance.protocol.renderer import render
from dnsbalance.ranking.active import ActiveTable
from tests.harness import fixture_table, make_config

ZONE = "cdn.example.org"
JP = Location("JP", "AS", 20)


@pytest.fixture(scope="module", params=[Algorithm.ECDSAP256SHA256, Algorithm.ED25519])
def key(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return keygen(tmp_path_factory.mktemp("keys"), request.param)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> ActiveTable:
    return fixture_table(tmp_path_factory.mktemp("dnssec") / "config", country_mmdb)


def signer_for(key: SigningKey, now: float | None = None) -> Signer:
    return Signer(key, ZONE, window_at(now or time.time(), DNSSECSettings(sign=True)))


def fresh(table: ActiveTable) -> ActiveTable:
    """The same table with empty caches (each test signs its own)."""
    return build_table_again(table)


def build_table_again(table: ActiveTable) -> ActiveTable:
    import dataclasses

    from dnsbalance.ranking.active import TableCaches
    return dataclasses.replace(table, caches=TableCaches())


def ask(table: ActiveTable, name: str, qtype: str, location: Location = UNKNOWN, do: bool = True,
        rng: Random | None = None) -> dns.message.Message:
    query = dns.message.make_query(name, qtype, want_dnssec=do)
    packet = query.to_wire()
    reply = respond(DNSRecord.parse(packet), location, table, rng or Random(7), packet=packet)
    return dns.message.from_wire(render(reply.message, TCP_SIZE).wire)


def dnskey_rrset(table: ActiveTable) -> dns.rrset.RRset:
    reply = ask(table, ZONE, "DNSKEY")
    keys = reply.find_rrset(reply.answer, dns.name.from_text(ZONE), dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    return keys


def validate_sections(reply: dns.message.Message, keys: dns.rrset.RRset, additional: bool = False) -> int:
    """Every RRset of the answer and authority sections (and the additional one) validated by its RRSIG; how
    many were."""
    checked = 0
    for section in (reply.answer, reply.authority, *((reply.additional,) if additional else ())):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sigs = [s for s in section if s.rdtype == dns.rdatatype.RRSIG and s.name == rrset.name
                    and s.covers == rrset.rdtype]
            assert sigs, f"no RRSIG for {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"
            dns.dnssec.validate(rrset, sigs[0], {dns.name.from_text(ZONE): keys})
            checked += 1
    return checked


def test_keygen_refuses_to_overwrite_and_is_private(tmp_path: Path) -> None:
    made = keygen(tmp_path / "keys", Algorithm.ECDSAP256SHA256)
    assert os.stat(tmp_path / "keys" / "zone.key").st_mode & 0o777 == 0o600
    with pytest.raises(KeyProblem, match="never overwrites"):
        keygen(tmp_path / "keys", Algorithm.ECDSAP256SHA256)
    assert load(tmp_path / "keys").dnskey == made.dnskey  # the first key kept
    assert "PRIVATE" not in repr(made) and str(made.tag) in repr(made)


def test_damaged_or_missing_key_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(KeyProblem, match="dnssec keygen"):
        load(tmp_path)
    (tmp_path / "zone.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyProblem, match="damaged"):
        load(tmp_path)


def test_ds_matches_dnspython(key: SigningKey, table: ActiveTable) -> None:
    signed = fresh(table)
    compiled(signed).sign(signer_for(key))
    keys = dnskey_rrset(signed)
    expected = dns.dnssec.make_ds(dns.name.from_text(ZONE), keys[0], "SHA256")
    line = ds_line(ZONE, key)
    assert line.startswith(f"{ZONE}. IN DS {key.tag} {int(key.algorithm)} 2 ")
    assert line.split(" ", 3)[3] == expected.to_text().upper()
    assert dns.dnssec.key_id(keys[0]) == key.tag


def test_every_distinct_weighted_answer_validates(key: SigningKey, table: ActiveTable) -> None:
    signed = fresh(table)
    compiled(signed).sign(signer_for(key))
    keys = dnskey_rrset(signed)
    seen: set[tuple[str, ...]] = set()
    rng = Random(3)
    for location in (JP, UNKNOWN, Location("DE", "EU", 0)):
        for qtype in ("A", "AAAA"):
            for _ in range(150):
                reply = ask(signed, f"deb.{ZONE}", qtype, location, rng=rng)
                answer = tuple(sorted(str(r) for rrset in reply.answer for r in rrset
                                      if rrset.rdtype != dns.rdatatype.RRSIG))
                if answer and answer not in seen:
                    seen.add(answer)
                    assert validate_sections(reply, keys) == 1
    assert len(seen) > 3  # several distinct sets, each validated


@pytest.mark.parametrize(("name", "qtype", "rcode", "checked"), [
    (ZONE, "SOA", 0, 1), (ZONE, "NS", 0, 1), (ZONE, "DNSKEY", 0, 1),
    (f"deb.{ZONE}", "TXT", 0, 2),  # NODATA: SOA and the name's NSEC
    (f"nothing-here.{ZONE}", "A", 3, 3),  # NXDOMAIN: SOA, the covering NSEC, the wildcard's
    (f"a.b.zzzz.{ZONE}", "AAAA", 3, 3),
])
def test_fixed_and_negative_answers_validate(key: SigningKey, table: ActiveTable, name: str, qtype: str,
                                             rcode: int, checked: int) -> None:
    signed = fresh(table)
    compiled(signed).sign(signer_for(key))
    reply = ask(signed, name, qtype)
    assert reply.rcode() == rcode
    assert validate_sections(reply, dnskey_rrset(signed)) == checked
    nsecs = [r for r in reply.authority if r.rdtype == dns.rdatatype.NSEC]
    if rcode == 3:
        qname = dns.name.from_text(name)
        assert any(n.name < qname < n[0].next or n[0].next == dns.name.from_text(ZONE) for n in nsecs)
    if qtype == "TXT":
        assert nsecs[0].name == dns.name.from_text(name)
        assert dns.rdatatype.TXT not in [t for w in nsecs[0][0].windows for t in _types(w)]


def _types(window: tuple[int, bytes]) -> list[int]:
    number, bits = window
    return [number * 256 + i * 8 + j for i, byte in enumerate(bits) for j in range(8) if byte & (0x80 >> j)]


def test_without_do_the_bytes_are_unchanged(key: SigningKey, table: ActiveTable) -> None:
    plain = fresh(table)
    signed = fresh(table)
    compiled(signed).sign(signer_for(key))
    for name, qtype in ((f"deb.{ZONE}", "A"), (ZONE, "SOA"), (f"nothing.{ZONE}", "A"), (f"deb.{ZONE}", "TXT")):
        for do_edns in (False, True):
            query = dns.message.make_query(name, qtype, use_edns=0 if do_edns else False)
            packet = query.to_wire()
            a = respond(DNSRecord.parse(packet), JP, plain, Random(1), packet=packet)
            b = respond(DNSRecord.parse(packet), JP, signed, Random(1), packet=packet)
            assert render(a.message, TCP_SIZE).wire == render(b.message, TCP_SIZE).wire


def test_rebuild_signs_only_changed_sets(key: SigningKey, table: ActiveTable) -> None:
    first = signer_for(key, now=1_800_000_000)
    compiled(fresh(table)).sign(first)
    assert first.made > 5
    again = first.next(1_800_000_000 + 3600, DNSSECSettings(sign=True))
    compiled(fresh(table)).sign(again)
    assert again.made == 0  # same content, same window: every signature reused
    later = again.next(1_800_000_000 + 8 * 86400, DNSSECSettings(sign=True))  # past `refresh`: a new window
    assert later.window != first.window
    compiled(fresh(table)).sign(later)
    assert later.made == first.made


def test_a_rebuild_takes_the_signed_sets_of_unchanged_pools_whole(key: SigningKey, table: ActiveTable) -> None:
    """A rebuild given the table before (its pools' answers inherited, as the server builds) takes the RRSIG
    records of every unchanged weighted set and apt order whole instead of walking them again; its answers
    validate. A new window (or key) takes nothing from it."""
    settings = DNSSECSettings(sign=True)
    now = time.time()  # (the answers are validated against the clock)
    one = fresh(table)
    compiled(one).precompute()
    first = signer_for(key, now=now)
    signed = compiled(one).sign(first)
    two = fresh(table)
    compiled(two).precompute(compiled(one))
    again = first.next(now + 3600, settings)
    resigned = compiled(two).sign(again, compiled(one))
    assert again.made == 0 and len(resigned.by_content) == len(signed.by_content)
    assert signed.sets and resigned.sets.keys() == signed.sets.keys()
    assert all(resigned.sets[k] is signed.sets[k] for k in signed.sets)
    assert signed.web_content and all(resigned.web_content[k] is signed.web_content[k] for k in signed.web_content)
    keys = dnskey_rrset(two)
    for name, rdtype in (("deb", "A"), ("deb", "AAAA"), ("_http._tcp.deb", "SRV")):
        assert validate_sections(ask(two, f"{name}.{ZONE}", rdtype, JP, rng=Random(2)), keys) >= 1
    later = again.next(now + 8 * 86400, settings)  # past `refresh`: a new window, everything signed anew
    three = fresh(table)
    compiled(three).precompute(compiled(two))
    fresher = compiled(three).sign(later, compiled(two))
    assert later.made == first.made and not any(fresher.sets[k] is resigned.sets[k] for k in resigned.sets)


def test_truncation_keeps_rrsigs_with_their_rrsets_and_ecs_works_with_do(key: SigningKey,
                                                                         table: ActiveTable) -> None:
    import dns.edns
    signed = fresh(table)
    compiled(signed).sign(signer_for(key))
    keys = dnskey_rrset(signed)
    truncated_seen = False
    for name, qtype in ((f"deb.{ZONE}", "A"), (f"a.b.c.nothing.{ZONE}", "AAAA"), (ZONE, "NS")):
        query = dns.message.make_query(name, qtype, want_dnssec=True, payload=512,
                                       options=[dns.edns.ECSOption("1.0.16.0", 24)])
        packet = query.to_wire()
        reply = respond(DNSRecord.parse(packet), JP, signed, Random(2), 24, packet=packet)
        whole = dns.message.from_wire(render(reply.message, TCP_SIZE).wire)
        validate_sections(whole, keys)  # TCP: everything, every RRset with its RRSIG
        assert any(isinstance(o, dns.edns.ECSOption) for o in whole.options)
        udp = render(reply.message, 512)
        parsed = dns.message.from_wire(udp.wire)
        if udp.truncated:
            truncated_seen = True
            assert parsed.flags & dns.flags.TC and not parsed.answer and not parsed.authority
        else:
            assert len(udp.wire) <= 512
            validate_sections(parsed, keys)  # whatever is sent carries its signatures
    assert truncated_seen or key.algorithm is Algorithm.ED25519


def test_balancer_signs_keeps_its_key_on_a_bad_reload_and_knows_when_to_refresh(tmp_path: Path,
                                                                                 country_mmdb: Path) -> None:
    from dnsbalance.serving.balancer import Balancer
    from dnsbalance.serving.inputs import load as load_folder
    folder = make_config(tmp_path / "config", country_mmdb)
    with (folder / "dnsbalance.yaml").open("a") as handle:
        handle.write("dnssec: {sign: true}\n")
    loaded, _ = load_folder(folder)
    assert loaded is not None
    with pytest.raises(KeyProblem, match="dnssec keygen"):
        Balancer(loaded, signing=True)
    key = keygen(loaded.config.settings.key_dir, Algorithm.ECDSAP256SHA256)
    balancer = Balancer(loaded, signing=True)
    first = balancer.serving.compiled.signatures
    assert first is not None and first.tag == key.tag and first.made == len(first.by_content)
    assert Balancer(loaded).serving.compiled.signatures is None  # explain, probe, plan: no signing
    balancer.regenerate()  # nothing changed: every signature reused
    again = balancer.serving.compiled.signatures
    assert again is not None and again is not first
    assert again.made == 0
    # the server's rebuild inherits the unchanged pools' answers before it signs, so it takes their signed sets
    # whole (signing first, it compiled every pool anew and walked every set again)
    assert first.sets and all(again.sets[k] is first.sets[k] for k in first.sets)
    (loaded.config.settings.key_dir / "zone.key").write_text("damaged\n")
    warned = balancer.reload(folder)  # applied, with the key's trouble for `dnsbalance reload` to print
    assert [p.severity for p in warned] == [Severity.WARNING] and "signing on with the keys in service" in str(warned[0])
    kept = balancer.serving.compiled.signatures
    assert kept is not None and kept.tag == key.tag
    assert not balancer.signatures_due(time.time())
    assert balancer.signatures_due(time.time() + 8 * 86400)
    (loaded.config.settings.key_dir / "zone.key").unlink()  # a rollover's keys: one next key, damaged
    keygen(loaded.config.settings.key_dir, Algorithm.ECDSAP256SHA256)
    (loaded.config.settings.key_dir / "next.key").write_text("damaged\n")
    assert [p.severity for p in balancer.reload(folder)] == [Severity.WARNING]
    kept = balancer.serving.compiled.signatures
    assert kept is not None and kept.tag == key.tag and len(kept.keys) == 1  # the keys in service go on
    with pytest.raises(KeyProblem, match="next.key"):
        Balancer(loaded, signing=True)  # at start: refused


def test_a_replaced_key_file_is_taken_up_by_a_reload_with_a_warning_never_by_a_health_rebuild(
        tmp_path: Path, country_mmdb: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`rm zone.key; dnssec keygen`, or the wrong backup restored: a health cycle's rebuild signs on with the keys
    in service (a key the parent's DS does not name would make the zone bogus at once); a reload takes the new
    key, warning that the zone never published it."""
    import logging

    from dnsbalance.serving.balancer import Balancer
    from dnsbalance.serving.inputs import load as load_folder
    folder = make_config(tmp_path / "config", country_mmdb)
    with (folder / "dnsbalance.yaml").open("a") as handle:
        handle.write("dnssec: {sign: true}\n")
    loaded, _ = load_folder(folder)
    assert loaded is not None
    key_dir = loaded.config.settings.key_dir
    old = keygen(key_dir, Algorithm.ECDSAP256SHA256)
    balancer = Balancer(loaded, signing=True)
    (key_dir / "zone.key").unlink()
    new = keygen(key_dir, Algorithm.ECDSAP256SHA256)
    balancer.regenerate()  # a health cycle, drains, a signature refresh
    signed = balancer.serving.compiled.signatures
    assert signed is not None and signed.tag == old.tag and signed.made == 0
    with caplog.at_level(logging.WARNING, logger="dnsbalance.serving.balancer"):
        warned = balancer.reload(folder)
    assert len(warned) == 1 and warned[0].severity is Severity.WARNING and "never published" in str(warned[0])
    signed = balancer.serving.compiled.signatures
    assert signed is not None and signed.tag == new.tag
    assert f"signing key is now tag {new.tag}, which the zone never published" in caplog.text


def test_apt_srv_orders_and_their_targets_validate(key: SigningKey, table: ActiveTable) -> None:
    """`_http._tcp.deb` SRV with DO: one of the presigned ranked orders, its RRSIG, and the targets' A/AAAA in
    the additional section each with its RRSIG (RFC 4035 3.1.1); the first target follows the weights."""
    from dnsbalance.compiler.web_orders import WebOrders
    signed = fresh(table)
    signatures = compiled(signed).sign(signer_for(key))
    keys = dnskey_rrset(signed)
    firsts: dict[str, int] = {}
    orders: set[tuple[str, ...]] = set()
    rng = Random(5)
    for _ in range(400):
        reply = ask(signed, f"_http._tcp.deb.{ZONE}", "SRV", JP, rng=rng)
        srv = reply.find_rrset(reply.answer, dns.name.from_text(f"_http._tcp.deb.{ZONE}"), dns.rdataclass.IN,
                               dns.rdatatype.SRV)
        ranked = tuple(str(r.target) for r in sorted(srv, key=lambda r: r.priority))
        if ranked not in orders:
            orders.add(ranked)
            assert validate_sections(reply, keys, additional=True) > len(srv)  # the SRV set and its targets'
            assert {r.rdtype for r in reply.additional} >= {dns.rdatatype.A, dns.rdatatype.RRSIG}
        firsts[ranked[0].split(".")[0]] = firsts.get(ranked[0].split(".")[0], 0) + 1
    # JP's deb: jp1..jp4 weighted 9000/6000/3000/1000: one presigned order per mirror, first by weight
    assert len(orders) == 4 and firsts["jp1"] > firsts["jp2"] > firsts["jp3"] > firsts["jp4"]
    web = next(iter(signatures.web.values()))
    assert isinstance(web, WebOrders) and len(web.signatures) == len(web.orders)
    assert len(ask(signed, f"_http._tcp.deb.{ZONE}", "SRV", JP, do=False, rng=Random(1)).answer) == 1  # no RRSIG


def test_ns_glue_in_the_additional_section_is_signed(key: SigningKey, table: ActiveTable) -> None:
    signed = fresh(table)
    compiled(signed).sign(signer_for(key))
    reply = ask(signed, ZONE, "NS")
    assert validate_sections(reply, dnskey_rrset(signed), additional=True) == 3  # NS, ns1's A and AAAA


def test_nodata_in_a_region_lacking_a_type_another_region_has_is_provable(key: SigningKey, tmp_path: Path,
                                                                          country_mmdb: Path) -> None:
    """JP's `v4` has AAAA (jp1), the default table's has none: a client outside JP gets NODATA whose NSEC
    leaves AAAA out (and keeps A), JP clients get the AAAA answer, both validate."""
    from dnsbalance.configuration.load import check_config
    from dnsbalance.health.view import ALL_USABLE
    from dnsbalance.ranking.build import build_table
    folder = make_config(tmp_path / "config", country_mmdb)
    with (folder / "country" / "JP.yaml").open("a") as handle:
        handle.write("v4:\n  jp1: 0\n")
    with (folder / "default.yaml").open("a") as handle:
        handle.write("v4:\n  def2: 0\n")
    config, problems = check_config(folder)
    assert config is not None, [str(p) for p in problems]
    signed = build_table(config, ALL_USABLE, generation=1, serial=1, seed=1)
    compiled(signed).sign(signer_for(key))
    keys = dnskey_rrset(signed)
    assert ask(signed, f"v4.{ZONE}", "AAAA", JP).answer
    nodata = ask(signed, f"v4.{ZONE}", "AAAA", UNKNOWN)
    assert not nodata.answer and validate_sections(nodata, keys) == 2
    nsec = next(r for r in nodata.authority if r.rdtype == dns.rdatatype.NSEC)
    listed = [t for w in nsec[0].windows for t in _types(w)]
    assert dns.rdatatype.AAAA not in listed and dns.rdatatype.A in listed
    other = ask(signed, f"v4.{ZONE}", "TXT", UNKNOWN)  # a type no region has: the name's whole NSEC
    listed = [t for w in next(r for r in other.authority if r.rdtype == dns.rdatatype.NSEC)[0].windows
              for t in _types(w)]
    assert dns.rdatatype.AAAA in listed and validate_sections(other, keys) == 2


def test_status_banners_say_when_signatures_are_overdue_or_expired(key: SigningKey, table: ActiveTable) -> None:
    from dnsbalance.ops import dnssec_section
    signed = fresh(table)
    signatures = compiled(signed).sign(signer_for(key, now=1_800_000_000))
    state = dnssec_section.dnssec_state(signatures, 7 * 86400)
    assert state is not None and state["key_tag"] == key.tag and state["keys"][0]["role"] == "signing"
    assert state["refresh_at"] == state["earliest_expiry"] - 7 * 86400
    assert dnssec_section.banners({"dnssec": state, "now": 1_800_000_000}) == []
    assert "dnssec-overdue" in dnssec_section.banners({"dnssec": state, "now": state["refresh_at"] + 3600})[0]
    assert "dnssec-expired" in dnssec_section.banners({"dnssec": state, "now": state["earliest_expiry"]})[0]
    assert f"key tag {key.tag}" in dnssec_section.section({"dnssec": state})
    assert dnssec_section.dnssec_state(None, 1) is None and dnssec_section.section({"dnssec": None}) == ""


def test_rollover_steps_refuse_out_of_order_and_too_early(tmp_path: Path) -> None:
    from dnsbalance.configuration.model import Settings, SOASettings
    from dnsbalance.dnssec import rollover
    from dnsbalance.dnssec.keys import load_keys
    settings = Settings(zone=ZONE, nameservers=(), soa=SOASettings(rname="h.example.org"))
    folder = tmp_path / "keys"
    with pytest.raises(KeyProblem, match="keygen"):
        rollover.start(folder, Algorithm.ECDSAP256SHA256, 1000.0)
    old = keygen(folder, Algorithm.ECDSAP256SHA256)
    with pytest.raises(KeyProblem, match="rollover start"):
        rollover.switch(folder, settings, 1000.0)
    with pytest.raises(KeyProblem, match="nothing to finish"):
        rollover.finish(folder, settings, 1000.0)
    with pytest.raises(KeyProblem, match="algorithm rollover"):  # not double-signed: refused unless forced
        rollover.start(folder, Algorithm.ED25519, 1000.0)
    assert not (folder / "next.key").exists()
    new = rollover.start(folder, Algorithm.ED25519, 1000.0, force=True).key
    assert os.stat(folder / "next.key").st_mode & 0o777 == 0o600
    with pytest.raises(KeyProblem, match="under way"):
        rollover.start(folder, Algorithm.ECDSAP256SHA256, 1000.0)
    keys = load_keys(folder)
    assert keys.signing.tag == old.tag and keys.next is not None and keys.next.tag == new.tag
    assert [k.tag for k in keys.for_parent] == [old.tag, new.tag] and len(keys.published) == 2
    wait = rollover.publish_wait(settings)
    assert wait >= settings.soa.ttl
    with pytest.raises(KeyProblem, match="too early to switch"):
        rollover.switch(folder, settings, 1000.0 + wait - 1)
    rollover.switch(folder, settings, 1000.0 + wait)
    keys = load_keys(folder)
    assert keys.signing.tag == new.tag and keys.retiring is not None and keys.retiring.tag == old.tag
    assert [k.tag for k in keys.for_parent] == [new.tag]  # the parent drops the old DS from now on
    with pytest.raises(KeyProblem, match="too early to finish"):
        rollover.finish(folder, settings, 1000.0 + wait + 1)
    rollover.finish(folder, settings, 1000.0 + wait + rollover.retire_wait(settings))
    keys = load_keys(folder)
    assert keys.published == (keys.signing,) and keys.signing.tag == new.tag
    assert sorted(p.name for p in folder.iterdir()) == ["zone.key"]


def test_a_rollover_signs_the_key_sets_with_both_keys_and_answers_cds(key: SigningKey, table: ActiveTable,
                                                                      tmp_path: Path) -> None:
    """The DNSKEY, CDS and CDNSKEY RRsets carry one RRSIG per published key, each valid; the rest of the zone
    is signed by the signing key only."""
    nxt = keygen(tmp_path, Algorithm.ECDSAP256SHA256, "next.key")
    signed = fresh(table)
    signer = Signer(key, ZONE, window_at(time.time(), DNSSECSettings(sign=True)), others=((nxt, "next"),),
                    for_parent=(key, nxt))
    signatures = compiled(signed).sign(signer)
    assert [role for _, _, role in signatures.keys] == ["signing", "next"]
    keys = dnskey_rrset(signed)
    assert len(keys) == 2
    for rdtype in ("DNSKEY", "CDS", "CDNSKEY"):
        reply = ask(signed, ZONE, rdtype)
        rrset = reply.find_rrset(reply.answer, dns.name.from_text(ZONE), dns.rdataclass.IN,
                                 dns.rdatatype.from_text(rdtype))
        sigs = reply.find_rrset(reply.answer, dns.name.from_text(ZONE), dns.rdataclass.IN, dns.rdatatype.RRSIG,
                                dns.rdatatype.from_text(rdtype))
        assert len(rrset) == 2 and {s.key_tag for s in sigs} == {key.tag, nxt.tag}
        for sig in sigs:  # each on its own
            dns.dnssec.validate(rrset, dns.rrset.from_rdata(sigs.name, sigs.ttl, sig),
                                {dns.name.from_text(ZONE): keys})
    cds = ask(signed, ZONE, "CDS").answer[0]
    assert {dns.dnssec.make_ds(ZONE + ".", k, "SHA256").to_text() for k in keys} == {r.to_text() for r in cds}
    answer = ask(signed, f"deb.{ZONE}", "A", JP)
    assert {s.key_tag for r in answer.answer if r.rdtype == dns.rdatatype.RRSIG for s in r} == {key.tag}
    apex_nsec = ask(signed, ZONE, "TXT").authority
    listed = [t for r in apex_nsec if r.rdtype == dns.rdatatype.NSEC for w in r[0].windows for t in _types(w)]
    assert dns.rdatatype.CDS in listed and dns.rdatatype.CDNSKEY in listed


def test_proof_owners_from_wire_labels_agree_with_the_text_search(key: SigningKey, table: ActiveTable) -> None:
    """The fast path finds NXDOMAIN's NSECs from the query's labels; the full path from its text: the same."""
    from dnsbalance.dnssec.nsec import canonical_key
    signed = fresh(table)
    chain = compiled(signed).sign(signer_for(key)).chain
    rng = Random(11)
    words = ["a", "deb", "deep", "_sub", "zz", "ns1", "mirror", "relay", "0", "-x", "_tcp", "m"]
    for _ in range(500):
        name = ".".join(rng.choice(words) for _ in range(rng.randint(1, 4))) + "." + ZONE
        if name in chain.rdata:
            continue
        covering = chain.covering(name)
        wildcard = chain.covering("*." + chain.closest_encloser(name, ZONE))
        assert chain.proof_owners(canonical_key(name), ZONE.count(".") + 1) == (covering, wildcard), name


def test_signed_apt_orders_are_cut_to_apts_512_bytes_like_unsigned_ones(key: SigningKey, tmp_path: Path) -> None:
    """Twenty mirrors under deb: each presigned order is the prefix that fits apt's 512 bytes (8 records), as an
    unsigned answer is, and its RRSIG covers exactly that prefix; one order per mirror, so every mirror can be
    apt's first choice."""
    from dnsbalance.configuration.load import check_config
    from dnsbalance.health.view import HealthView
    from dnsbalance.ranking.build import build_table
    target = tmp_path / "config"
    target.mkdir()
    (target / "dnsbalance.yaml").write_text(f"zone: {ZONE}\nnameservers: {{ns1.{ZONE}: [192.0.2.53]}}\n"
                                            "soa: {rname: hostmaster.example.org}\n")
    (target / "mirrors.yaml").write_text("mirrors:\n" + "".join(
        f"  mirror{i:02d}: {{addresses: [192.0.2.{i + 1}]}}\n" for i in range(20)))
    (target / "default.yaml").write_text("deb:\n" + "".join(f"  mirror{i:02d}: {i * 100}\n" for i in range(20)))
    config, problems = check_config(target)
    assert config is not None, [str(p) for p in problems]
    table = build_table(config, HealthView({m: True for m in config.mirrors}), 1, 1)
    signatures = compiled(table).sign(signer_for(key))
    orders = next(iter(signatures.web.values())).orders
    assert len(orders) == 20 and {o[0].name for o in orders} == {f"mirror{i:02d}" for i in range(20)}
    assert {len(o) for o in orders} == {8}
    keys = dnskey_rrset(table)
    rng = Random(9)
    for _ in range(30):
        reply = ask(table, f"_http._tcp.deb.{ZONE}", "SRV", rng=rng)
        srv = next(r for r in reply.answer if r.rdtype == dns.rdatatype.SRV)
        assert sorted(r.priority for r in srv) == list(range(8))
        assert validate_sections(reply, keys, additional=True) == 1 + 8  # the SRV set, each target's A


def test_a_rollover_whose_timestamps_are_lost_waits_for_force(tmp_path: Path) -> None:
    """Without rollover.json the step before's time is unknown: switching is refused unless forced (it was
    taken at once), and the switch leaves a signing key in place at every moment (a link, then a rename)."""
    from dnsbalance.configuration.model import Settings, SOASettings
    from dnsbalance.dnssec import rollover
    from dnsbalance.dnssec.keys import load_keys
    settings = Settings(zone=ZONE, nameservers=(), soa=SOASettings(rname="h.example.org"))
    folder = tmp_path / "keys"
    old = keygen(folder, Algorithm.ECDSAP256SHA256)
    new = rollover.start(folder, Algorithm.ECDSAP256SHA256, 1000.0).key
    (folder / "rollover.json").unlink()
    with pytest.raises(KeyProblem, match="cannot tell when the previous step was taken"):
        rollover.switch(folder, settings, 1e9)
    assert load_keys(folder).signing.tag == old.tag
    rollover.switch(folder, settings, 1e9, force=True)
    keys = load_keys(folder)
    assert keys.signing.tag == new.tag and keys.retiring is not None and keys.retiring.tag == old.tag


def _many_signed(key: SigningKey, count: int, threads: int) -> tuple[Signer, list[str], list[Cached]]:
    signer = Signer(key, ZONE, window_at(time.time(), DNSSECSettings(sign=True)), threads=threads)
    owners = [f"n{i}.{ZONE}" for i in range(count)]
    asked = [signer.request(owner, RType.A, 60, (bytes((10, 0, i // 256, i % 256)),))
             for i, owner in enumerate(owners)]
    signer.finish()
    return signer, owners, asked


def _validates(key: SigningKey, signer: Signer, owners: list[str], asked: list[Cached], i: int) -> None:
    import dns.rdata

    dnskey = dns.rrset.from_rdata(ZONE + ".", 3600, dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.DNSKEY, key.dnskey, 0, len(key.dnskey)))
    rrset = dns.rrset.from_text(owners[i] + ".", 60, "IN", "A", f"10.0.{i // 256}.{i % 256}")
    sig = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.RRSIG, signer.signature(asked[i]), 0,
                              len(signer.signature(asked[i])))
    dns.dnssec.validate(rrset, dns.rrset.from_rdata(owners[i] + ".", 60, sig), {dns.name.from_text(ZONE): dnskey})


def test_signing_threads_make_valid_signatures_and_none_outlives_the_build(key: SigningKey) -> None:
    """More RRsets than two batches, signed by two threads while they are requested (libcrypto in batches) and
    by the build's thread at finish(): every RRSIG validates against the DNSKEY, each is kept by its own RRset,
    and no signing thread is left once finish() returns (answerers are forked after it)."""
    import threading

    from dnsbalance.dnssec import signer as signing
    signer, owners, asked = _many_signed(key, 2 * signing.BATCH + 7, threads=2)
    assert signer.made == len(owners)
    assert not [t for t in threading.enumerate() if t.name.startswith("dnssec-sign")]
    for i in (0, signing.BATCH - 1, signing.BATCH, len(owners) - 1):  # in each batch
        _validates(key, signer, owners, asked, i)
    if signing._sign is not None:  # built here (CI installs libssl-dev): the batches were libcrypto's
        assert all(isinstance(signs, signing._sign.Key) for signs in signer._signs.values())


def test_without_the_c_extension_cryptography_signs_the_same_rrsigs(key: SigningKey,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback when _sign.c was not built: valid RRSIGs through `cryptography`, no thread started."""
    from dnsbalance.dnssec import signer as signing
    monkeypatch.setattr(signing, "_sign", None)
    signer, owners, asked = _many_signed(key, signing.BATCH + 3, threads=2)
    assert signer.made == len(owners)
    assert not signer._workers
    for i in (0, len(owners) - 1):
        _validates(key, signer, owners, asked, i)


def test_a_failed_batch_fails_the_build_and_leaves_no_thread(key: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from dnsbalance.dnssec import signer as signing
    calls = []

    def failing(self: signing.Batch) -> object:
        calls.append(self)
        raise RuntimeError("libcrypto failed to sign")

    monkeypatch.setattr(signing.Batch, "sign", failing)
    with pytest.raises(RuntimeError, match="failed to sign"):
        _many_signed(key, 2 * signing.BATCH + 1, threads=2)
    assert len(calls) == 3
    assert not [t for t in threading.enumerate() if t.name.startswith("dnssec-sign")]


def test_libcrypto_key_refuses_what_cannot_sign_and_never_shows_the_key(key: SigningKey) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from dnsbalance.dnssec import signer as signing
    if signing._sign is None:
        pytest.skip("the C extension is not built here (no compiler or no libssl-dev)")
    with pytest.raises(ValueError, match="PKCS#8"):
        signing._sign.Key(b"not a key")
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ValueError, match="only ECDSA P-256 and Ed25519"):
        signing._sign.Key(p384)
    native = signing.batch_signer(key.private)
    assert "PRIVATE" not in repr(native) and len(repr(native)) < 40
    with pytest.raises(TypeError, match="at least as long as its head"):
        native.sign_many([b"short"], 10)
    assert native.sign_many([], 10) == []
    with pytest.raises(TypeError, match="made once"):  # signing threads may hold it: never replaced
        native.__init__(p384)
    with pytest.raises(ValueError, match="not given a key"):
        signing._sign.Key.__new__(signing._sign.Key).sign_many([b"x"], 0)
