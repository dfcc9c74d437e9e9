"""A key rollover through a real validating unbound (RFC 7583, pre-publish for a combined key): `dnssec rollover
start`, `switch`, `finish` against the running server, with the TTLs scaled down to seconds so that waiting them
out is part of the test. A resolver whose trust anchor is the parent's DS of the moment gets AD at every step,
never SERVFAIL; CDS and `dnssec ds` say what the parent should hold."""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.harness import Server, start_server
from tests.signed_zone import dnsbalance, signed_zone
from tests.unbound import ZONE, Unbound, secure, start_unbound

pytestmark = pytest.mark.skipif(shutil.which("unbound") is None and not Path("/usr/sbin/unbound").exists(),
                                reason="needs the unbound package")

TTL = 2  # every TTL of the zone (answers, SOA, DNSKEY, negative): caches turn over in seconds


@pytest.fixture
def zone(tmp_path: Path) -> Iterator[tuple[Server, Path, Path]]:
    config = signed_zone(tmp_path / "config")
    settings = config / "dnsbalance.yaml"
    text = settings.read_text().replace("ttl: 30", f"ttl: {TTL}")
    settings.write_text(text.replace("minimum: 45}", f"minimum: {TTL}, ttl: {TTL}}}"))
    assert dnsbalance("dnssec", "keygen", "--config", str(config)).returncode == 0
    server = start_server(config, tmp_path / "server.log", ipv6=False)
    yield server, config, tmp_path
    server.stop()


def ds_lines(config: Path) -> list[str]:
    shown = dnsbalance("dnssec", "ds", "--config", str(config))
    assert shown.returncode == 0, shown
    return shown.stdout.splitlines()


def resolver(folder: Path, server: Server, anchor: str) -> Unbound:
    return start_unbound(folder, server.port, trust_anchor=anchor)


def every_kind_validates(unbound: Unbound) -> None:
    secure(unbound, f"deb.{ZONE}", "A")
    secure(unbound, f"_http._tcp.deb.{ZONE}", "SRV")
    secure(unbound, f"deb.{ZONE}", "TXT")
    secure(unbound, f"nothing.{ZONE}", "A", rcode=dns.rcode.NXDOMAIN)
    secure(unbound, ZONE, "CDS")


def signers(server: Server, name: str, rdtype: str) -> set[int]:
    """Key tags of the RRSIGs over the answer, as the server hands it out."""
    reply = dns.query.udp(dns.message.make_query(name, rdtype, want_dnssec=True), "127.0.0.1", port=server.port,
                          timeout=5)
    return {sig.key_tag for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG for sig in rrset}


def published(server: Server, rdtype: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(ZONE, rdtype), "127.0.0.1", port=server.port, timeout=5)
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


def cds_as_ds(server: Server) -> list[str]:
    return sorted(f"{ZONE}. IN DS {rr.to_text().upper()}" for rr in
                  dns.query.udp(dns.message.make_query(ZONE, "CDS"), "127.0.0.1", port=server.port,
                                timeout=5).answer[0])


def settle() -> None:
    time.sleep(TTL + 1.5)  # the step's wait, scaled: everything cached before the step has expired


def test_rollover_steps_validate_at_every_step(zone: tuple[Server, Path, Path]) -> None:
    server, config, base = zone
    [old_ds] = ds_lines(config)
    old_tag = int(old_ds.split()[3])
    assert cds_as_ds(server) == [old_ds]  # CDS in the steady state: the DS the parent has
    parent_old = resolver(base / "old", server, old_ds)  # resolvers that trust the parent's DS of the moment
    try:
        every_kind_validates(parent_old)
        assert len(secure(parent_old, ZONE, "DNSKEY").answer[0]) == 1

        started = dnsbalance("dnssec", "rollover", "start", "--config", str(config))
        assert started.returncode == 0 and "next.key" in started.stdout and "applied" in started.stdout, started
        both = ds_lines(config)
        assert len(both) == 2 and both[0] == old_ds
        new_ds = both[1]
        new_tag = int(new_ds.split()[3])
        assert cds_as_ds(server) == sorted(both)
        assert len(published(server, "DNSKEY")) == 2 and len(published(server, "CDNSKEY")) == 2
        status = dnsbalance("dnssec", "status", "--config", str(config)).stdout
        assert f"tag {old_tag}, algorithm 13 (ECDSAP256SHA256), signs" in status
        assert f"tag {new_tag}, algorithm 13 (ECDSAP256SHA256), next, published" in status
        assert signers(server, f"deb.{ZONE}", "A") == {old_tag}  # the old key still signs
        assert signers(server, ZONE, "DNSKEY") == {old_tag, new_tag}
        settle()
        every_kind_validates(parent_old)
        assert len(secure(parent_old, ZONE, "DNSKEY").answer[0]) == 2

        early = dnsbalance("dnssec", "rollover", "switch", "--config", str(config))
        assert early.returncode == 1 and "too early to switch" in early.stderr and "--force" in early.stderr, early
        assert signers(server, f"deb.{ZONE}", "A") == {old_tag}
        switched = dnsbalance("dnssec", "rollover", "switch", "--force", "--config", str(config))
        assert switched.returncode == 0 and "applied" in switched.stdout, switched
        assert signers(server, f"deb.{ZONE}", "A") == {new_tag}  # the new key signs ...
        assert signers(server, ZONE, "DNSKEY") == {old_tag, new_tag}  # ... and both sign the key set
        assert ds_lines(config) == [new_ds] and cds_as_ds(server) == [new_ds]
        assert len(published(server, "DNSKEY")) == 2
        settle()
        every_kind_validates(parent_old)  # a parent still on the old DS: validates through the old key's RRSIG
        parent_new = resolver(base / "new", server, new_ds)  # the parent has taken the new DS
        try:
            every_kind_validates(parent_new)

            early = dnsbalance("dnssec", "rollover", "finish", "--config", str(config))
            assert early.returncode == 1 and "too early to finish" in early.stderr, early
            finished = dnsbalance("dnssec", "rollover", "finish", "--force", "--config", str(config))
            assert finished.returncode == 0 and "applied" in finished.stdout, finished
            assert len(published(server, "DNSKEY")) == 1 and signers(server, ZONE, "DNSKEY") == {new_tag}
            assert not (config / "state" / "keys" / "retiring.key").exists()
            settle()
            every_kind_validates(parent_new)
            assert len(secure(parent_new, ZONE, "DNSKEY").answer[0]) == 1
            for unbound in (parent_old, parent_new):
                assert "bogus" not in unbound.log().lower()
        finally:
            parent_new.stop()
    finally:
        parent_old.stop()
    again = dnsbalance("dnssec", "rollover", "finish", "--force", "--config", str(config))
    assert again.returncode == 1 and "nothing to finish" in again.stderr
