"""DNSSEC with a real validating unbound (issue 25): trust anchor from `dnsbalance dnssec ds`, stub-zone to the
server, ECS on. Every kind of answer comes back secure (AD) for clients in several regions, before and after a
change of the signed sets; `serve` refuses to sign without a key."""
from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest

from tests.harness import Server, reload_and_wait, start_server
from tests.signed_zone import JP_AFTER, REGIONS, dnsbalance, signed_zone
from tests.unbound import ZONE, Unbound, secure, start_unbound

pytestmark = pytest.mark.skipif(shutil.which("unbound") is None and not Path("/usr/sbin/unbound").exists(),
                                reason="needs the unbound package")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Unbound, Path]]:
    base = tmp_path_factory.mktemp("dnssec")
    config = signed_zone(base / "config")
    made = dnsbalance("dnssec", "keygen", "--config", str(config))
    assert made.returncode == 0, made.stderr
    ds = dnsbalance("dnssec", "ds", "--config", str(config))
    assert ds.returncode == 0 and ds.stdout.startswith(f"{ZONE}. IN DS "), ds
    server = start_server(config, base / "server.log", ipv6=False)
    resolver = start_unbound(base / "unbound", server.port, trust_anchor=ds.stdout.strip())
    yield server, resolver, config
    resolver.stop()
    server.stop()


def records(reply: dns.message.Message, rdtype: str) -> list[str]:
    return sorted(str(rr) for rrset in reply.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                  for rr in rrset)


def test_every_kind_of_answer_validates_behind_unbound(setup: tuple[Server, Unbound, Path]) -> None:
    server, resolver, config = setup
    firsts = {}
    for code, (client, _) in REGIONS.items():
        reply = secure(resolver, f"deb.{ZONE}", "A", client)
        firsts[code] = records(reply, "A")
        assert firsts[code], code
    assert set(firsts["JP"]) <= {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}
    assert set(firsts["BR"]) <= {"203.0.113.1", "203.0.113.2"}  # default table: another signed set
    assert records(secure(resolver, f"deb.{ZONE}", "AAAA"), "AAAA")
    nodata = secure(resolver, f"deb.{ZONE}", "TXT")
    assert not nodata.answer
    secure(resolver, f"no-such-name.{ZONE}", "A", rcode=dns.rcode.NXDOMAIN)
    secure(resolver, f"x.y.deep.{ZONE}", "AAAA", rcode=dns.rcode.NXDOMAIN)
    assert records(secure(resolver, ZONE, "SOA"), "SOA")
    assert len(records(secure(resolver, ZONE, "NS"), "NS")) == 2
    assert records(secure(resolver, ZONE, "DNSKEY"), "DNSKEY")
    assert len(records(secure(resolver, f"_stun._udp.{ZONE}", "SRV"), "SRV")) == 2
    assert records(secure(resolver, f"ns1.{ZONE}", "A"), "A") == ["192.0.2.53"]

    # A change of the signed sets: jp1 taken down by its operator, the configuration reloaded.
    mirrors = config / "mirrors.yaml"
    mirrors.write_text(mirrors.read_text().replace("jp1: {addresses: [192.0.2.1, \"2001:db8::1\"]}",
                                                   "jp1: {addresses: [192.0.2.1, \"2001:db8::1\"], state: down}"))
    reload_and_wait(server, "configuration reloaded", 1)
    for _ in range(5):
        after = records(secure(resolver, f"deb.{ZONE}", "A", JP_AFTER), "A")
        assert after and "192.0.2.1" not in after
    assert "bogus" not in resolver.log().lower()


def test_apt_srv_sets_and_their_targets_validate(setup: tuple[Server, Unbound, Path]) -> None:
    """apt's `_http._tcp.deb` SRV (a presigned ranked order) and the targets' A/AAAA come back secure, for
    clients of two regions; the additional section reaches unbound with its RRSIGs."""
    _, resolver, _ = setup
    for client, mirrors in (("127.1.0.7", {"jp1", "jp2", "jp3", "jp4"}), ("127.3.0.7", {"def1", "def2"})):
        reply = secure(resolver, f"_http._tcp.deb.{ZONE}", "SRV", client)
        targets = [rr.target for rrset in reply.answer if rrset.rdtype == dns.rdatatype.SRV
                   for rr in sorted(rrset, key=lambda r: r.priority)]
        assert {t.labels[0].decode() for t in targets} <= mirrors and len(targets) >= 2, reply
        assert all(str(t).endswith(f".mirror.deb.{ZONE}.") for t in targets)
        first = str(targets[0])
        assert records(secure(resolver, first, "A", client), "A")
    assert records(secure(resolver, f"jp1.mirror.deb.{ZONE}", "AAAA"), "AAAA") == ["2001:db8::1"]
    nodata = secure(resolver, f"jp3.mirror.deb.{ZONE}", "AAAA")  # jp3 has no IPv6 address: NODATA
    assert not nodata.answer
    direct = dns.query.udp(dns.message.make_query(f"_http._tcp.deb.{ZONE}", "SRV", want_dnssec=True),
                           "127.0.0.1", port=setup[0].port, timeout=5)
    signed = {(rrset.name, rrset.covers) for rrset in direct.additional if rrset.rdtype == dns.rdatatype.RRSIG}
    addressed = {(rrset.name, rrset.rdtype) for rrset in direct.additional if rrset.rdtype != dns.rdatatype.RRSIG
                 and rrset.rdtype != dns.rdatatype.OPT}
    assert addressed and addressed <= signed  # every additional RRset with its RRSIG


def test_nodata_where_a_region_lacks_a_type_another_has_validates(setup: tuple[Server, Unbound, Path]) -> None:
    """v4 has AAAA in JP's table, none in the default's: BR's NODATA for AAAA is secure, not SERVFAIL, and
    JP still gets its AAAA, secure (asked first, from its own /24)."""
    _, resolver, _ = setup
    assert records(secure(resolver, f"v4.{ZONE}", "AAAA", "127.1.0.7"), "AAAA") == ["2001:db8::2"]
    nodata = secure(resolver, f"v4.{ZONE}", "AAAA", "127.3.0.7")
    assert not nodata.answer and any(rrset.rdtype == dns.rdatatype.SOA for rrset in nodata.authority)
    assert records(secure(resolver, f"v4.{ZONE}", "A", "127.3.0.7"), "A") == ["203.0.113.2"]
    assert "bogus" not in resolver.log().lower()


def test_one_regions_nodata_is_not_served_to_another_region_from_the_cache(setup: tuple[Server, Unbound, Path],
                                                                          tmp_path: Path) -> None:
    """The RFC 8198 worry, checked against a real resolver: a fresh unbound (aggressive NSEC on by default since
    1.15, subnetcache on) first gets BR's NODATA for v4 AAAA, whose NSEC leaves AAAA out; a JP client asking right
    after still gets JP's AAAA, secure, not a NODATA made from the cached NSEC."""
    server, _, config = setup
    ds = dnsbalance("dnssec", "ds", "--config", str(config))
    fresh = start_unbound(tmp_path / "unbound", server.port, trust_anchor=ds.stdout.strip())
    try:
        nodata = secure(fresh, f"v4.{ZONE}", "AAAA", "127.3.0.7")
        assert not nodata.answer
        assert any(rrset.rdtype == dns.rdatatype.NSEC for rrset in nodata.authority)
        assert records(secure(fresh, f"v4.{ZONE}", "AAAA", "127.1.0.7"), "AAAA") == ["2001:db8::2"]
    finally:
        fresh.stop()


def test_status_metrics_and_command_show_signing_state_never_the_key(setup: tuple[Server, Unbound, Path]) -> None:
    server, _, config = setup
    tag = int(dnsbalance("dnssec", "ds", "--config", str(config)).stdout.split()[3])
    metrics = httpx.get(f"{server.status_url}/metrics", timeout=5).text
    assert f"dnsbalance_dnssec_key_tag {float(tag)}" in metrics
    expiry = float(re.search(r"^dnsbalance_dnssec_signature_expiry_timestamp_seconds (\S+)", metrics,
                             re.MULTILINE).group(1))
    assert time.time() + 7 * 86400 < expiry < time.time() + 15 * 86400
    assert float(re.search(r"^dnsbalance_dnssec_rrsets_signed (\S+)", metrics, re.MULTILINE).group(1)) > 10
    # CI builds the C extension (libssl-dev is installed): libcrypto signs, and the key is the server's own
    assert 'dnsbalance_dnssec_signer_info{engine="libcrypto",source="local"} 1.0' in metrics
    status = dnsbalance("dnssec", "status", "--config", str(config))
    assert status.returncode == 0 and f"key tag {tag}" in status.stdout and "earliest signature expiry" in status.stdout
    document = httpx.get(f"{server.status_url}/status.json", timeout=5).json()["dnssec"]
    assert document["key_tag"] == tag and document["algorithm"] == 13
    assert document["algorithm_name"] == "ECDSAP256SHA256"
    assert document["keys"] == [{"tag": tag, "algorithm": 13, "role": "signing"}]
    assert document["earliest_expiry"] == int(expiry) and document["rrsets_signed"] > 10
    assert document["signatures_made"] >= 0 and document["refresh_at"] == expiry - 7 * 86400
    assert document["engine"] == "libcrypto" and document["source"] == "local"
    page = httpx.get(f"{server.status_url}/", timeout=5).text
    assert "<h2>DNSSEC</h2>" in page and f"Signed with key tag {tag}" in page and "dnssec-expired" not in page
    checked = dnsbalance("check", "--config", str(config))
    assert checked.returncode == 0 and "dnssec" not in checked.stdout, checked
    secret = (config / "state" / "keys" / "zone.key").read_text().splitlines()[1]
    for shown in (metrics, status.stdout, server.log(), page,
                  httpx.get(f"{server.status_url}/status.json", timeout=5).text):
        assert secret not in shown and "PRIVATE KEY" not in shown


def test_serve_without_a_key_refuses_and_names_the_command(tmp_path: Path) -> None:
    config = signed_zone(tmp_path / "config")
    refused = dnsbalance("serve", "--config", str(config), "--listen", "127.0.0.1:0", "--status", "off")
    assert refused.returncode == 1
    assert "dnsbalance dnssec keygen" in refused.stderr
    checked = dnsbalance("check", "--config", str(config))  # `check` says so before a start does
    assert checked.returncode == 1 and "dnsbalance dnssec keygen" in checked.stdout, checked
    (config / "state" / "keys").mkdir(parents=True)
    (config / "state" / "keys" / "zone.key").write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n")
    damaged = dnsbalance("serve", "--config", str(config), "--listen", "127.0.0.1:0", "--status", "off")
    assert damaged.returncode == 1 and "damaged" in damaged.stderr
    assert "garbage" not in damaged.stderr
    checked = dnsbalance("check", "--config", str(config))
    assert checked.returncode == 1 and "damaged" in checked.stdout and "garbage" not in checked.stdout, checked
    assert checked.stdout.startswith(f"{config / 'dnsbalance.yaml'}:"), checked


def test_check_warns_when_signatures_would_expire_before_the_next_refresh(tmp_path: Path) -> None:
    """A refresh shorter than the TTLs a resolver keeps, and a state folder whose signatures (written by a
    server that has stopped) are past due or expired: warnings, exit 0 (the zone still serves)."""
    config = signed_zone(tmp_path / "config")
    assert dnsbalance("dnssec", "keygen", "--config", str(config)).returncode == 0
    settings = config / "dnsbalance.yaml"
    settings.write_text(settings.read_text().replace("dnssec: {sign: true}", "dnssec: {sign: true, refresh: 1200}"))
    (config / "state").mkdir(exist_ok=True)
    signing = config / "state" / "dnssec.json"
    signing.write_text(json.dumps({"generation": 3, "key_tag": 1, "earliest_expiry": int(time.time()) - 60}))
    checked = dnsbalance("check", "--config", str(config))
    assert checked.returncode == 0, checked
    lines = [line for line in checked.stdout.splitlines() if "dnssec" in line]
    assert len(lines) == 2 and all(line.startswith(f"{settings}:") and ": warning: " in line for line in lines)
    assert "refresh (1200 s) is shorter than the longest TTL (3600 s)" in lines[0]
    assert "expired at" in lines[1]
    settings.write_text(settings.read_text().replace("refresh: 1200", "refresh: 86400"))
    signing.write_text(json.dumps({"earliest_expiry": int(time.time()) + 3600}))  # due an hour ago, not made
    overdue = dnsbalance("check", "--config", str(config))
    assert overdue.returncode == 0 and "is the server running?" in overdue.stdout, overdue
    signing.write_text(json.dumps({"earliest_expiry": int(time.time()) + 10 * 86400}))
    assert "dnssec" not in dnsbalance("check", "--config", str(config)).stdout
