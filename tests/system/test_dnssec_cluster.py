"""One DNSSEC key for every name server of a cluster, kept in etcd (cluster/keystore.py): a real etcd
(tests/etcd.py), two real signed servers in one cluster, real validating unbounds. The key is made once, in etcd;
the second server adopts it; both sign with it and validate against the one DS; a second keygen and a server with
a key the cluster lacks are refused; a rollover step taken on either server reaches the other within seconds."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import httpx
import pytest

from dnsbalance.configuration.model import Algorithm
from dnsbalance.dnssec.keys import keygen as local_keygen
from tests.etcd import EtcdCluster, have_etcd
from tests.harness import ROOT, Server, start_server, until
from tests.mirrors import Mirror, probe_at
from tests.signed_zone import dnsbalance, signed_zone
from tests.unbound import ZONE, secure, start_unbound

pytestmark = [pytest.mark.skipif(not have_etcd(), reason="etcd-server is not installed (tools/install-test-packages)"),
              pytest.mark.skipif(shutil.which("unbound") is None and not Path("/usr/sbin/unbound").exists(),
                                 reason="needs the unbound package")]


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    (tmp_path / "etcd").mkdir()
    cluster = EtcdCluster(tmp_path / "etcd", size=1).start()
    yield cluster
    cluster.stop()


def member(base: Path, index: int, etcd: EtcdCluster, fleet: dict[str, Mirror] | None = None) -> Path:
    """A signed zone's folder (its own state and key folder) in the cluster as ns<index>. With `fleet`, health
    checks on (against those loopback mirrors, every second), so the cluster's watch streams the prefix."""
    config = signed_zone(base / f"ns{index}")
    settings = config / "dnsbalance.yaml"
    if fleet is not None:
        probe_at(config, fleet)
        settings.write_text(settings.read_text().replace(
            "health: {enabled: false}\n", f"health: {{interval: 1, timeout: 2, master: '{fleet['master'].url}', "
            "addresses: false, vhost: false, traces: false}\n"))
    with settings.open("a") as handle:
        handle.write(f"cluster: {{etcd: {json.dumps(etcd.endpoints)}, instance: ns{index}}}\n")
    return config


def keys_of(config: Path) -> Path:
    return config / "state" / "keys"


def signed(server: Server, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    try:
        return dns.query.udp(query, "127.0.0.1", port=server.port, timeout=5)
    except dns.exception.Timeout:  # a datagram lost on a loaded machine is not what these tests look at
        return dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=10)


def signers(server: Server, name: str, rdtype: str) -> set[int]:
    return {sig.key_tag for rrset in signed(server, name, rdtype).answer if rrset.rdtype == dns.rdatatype.RRSIG
            for sig in rrset}


def dnskeys(server: Server) -> dns.rrset.RRset:
    reply = signed(server, ZONE, "DNSKEY")
    return reply.find_rrset(reply.answer, dns.name.from_text(ZONE), dns.rdataclass.IN, dns.rdatatype.DNSKEY)


def validate_with(server: Server, keys: dns.rrset.RRset, name: str, rdtype: str) -> None:
    """Every RRset of the server's DO answer validates against `keys` (another server's DNSKEY RRset)."""
    reply = signed(server, name, rdtype)
    covered = [r for r in reply.answer if r.rdtype != dns.rdatatype.RRSIG]
    assert covered, reply
    for rrset in covered:
        sigs = reply.find_rrset(reply.answer, rrset.name, rrset.rdclass, dns.rdatatype.RRSIG, rrset.rdtype)
        dns.dnssec.validate(rrset, sigs, {dns.name.from_text(ZONE): keys})


@pytest.fixture(params=["read", "watch"])
def pair(request: pytest.FixtureRequest, tmp_path: Path,
         etcd: EtcdCluster) -> Iterator[tuple[list[Server], list[Path], int]]:
    """Two running name servers of one cluster: keygen run against the first, the second started with an empty
    key folder. The cluster's key tag. "read": health checks off, so no watch: the key follower reads etcd each
    second; "watch": health checks on, and the follower takes the keys off the cluster's watch."""
    fleet = request.getfixturevalue("zone_fleet") if request.param == "watch" else None
    configs = [member(tmp_path, 1, etcd, fleet), member(tmp_path, 2, etcd, fleet)]
    made = dnsbalance("dnssec", "keygen", "--config", str(configs[0]))
    assert made.returncode == 0 and "created in etcd" in made.stdout, made
    tag = int(made.stdout.split("key tag ")[1].split(",")[0])
    assert not keys_of(configs[1]).exists()
    servers: list[Server] = []
    try:
        for index, config in enumerate(configs):
            servers.append(start_server(config, tmp_path / f"ns{index + 1}.log", ipv6=False))
        if fleet is not None:
            for server in servers:
                server.wait_for_log(r"cluster: watching etcd", timeout=20)
        yield servers, configs, tag
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("pair", ["read"], indirect=True)  # the watch: the rollover test
def test_two_servers_sign_with_the_clusters_one_key(pair: tuple[list[Server], list[Path], int],
                                                    tmp_path: Path) -> None:
    servers, configs, tag = pair
    servers[1].wait_for_log(rf"adopted the cluster's key tag {tag}")
    copy = keys_of(configs[1]) / "zone.key"
    assert copy.read_bytes() == (keys_of(configs[0]) / "zone.key").read_bytes()
    assert os.stat(copy).st_mode & 0o777 == 0o600
    again = dnsbalance("dnssec", "keygen", "--config", str(configs[1]))  # a second key for the cluster: refused
    assert again.returncode == 1 and f"already has a DNSSEC key (tag {tag}" in again.stderr, again
    assert "fetch" in again.stderr and copy.read_bytes() == (keys_of(configs[0]) / "zone.key").read_bytes()
    ds = [dnsbalance("dnssec", "ds", "--config", str(c)).stdout.strip() for c in configs]
    assert ds[0] == ds[1] and ds[0].startswith(f"{ZONE}. IN DS {tag} 13 2 "), ds

    for server in servers:
        assert signers(server, f"deb.{ZONE}", "A") == {tag}
        assert signers(server, ZONE, "SOA") == {tag}
    for keys_from in servers:  # every answer of either server validates with the DNSKEY from either server
        keys = dnskeys(keys_from)
        assert len(keys) == 1
        for server in servers:
            for name, rdtype in ((f"deb.{ZONE}", "A"), (f"deb.{ZONE}", "AAAA"), (ZONE, "NS"), (ZONE, "DNSKEY")):
                validate_with(server, keys, name, rdtype)
    for server in servers:
        state = httpx.get(f"{server.status_url}/status.json", timeout=5).json()["dnssec"]
        assert state["key_tag"] == tag and state["source"] == "cluster", state
        assert "the cluster&#x27;s key" in httpx.get(f"{server.status_url}/", timeout=5).text
        metrics = httpx.get(f"{server.status_url}/metrics", timeout=5).text
        assert 'dnsbalance_dnssec_signer_info{engine="libcrypto",source="cluster"} 1.0' in metrics
    status = dnsbalance("dnssec", "status", "--config", str(configs[1]))
    assert status.returncode == 0 and "holds a copy (source: cluster)" in status.stdout, status
    checked = dnsbalance("check", "--config", str(configs[1]))
    assert checked.returncode == 0 and "dnssec:" not in checked.stdout, checked

    # a validating resolver with both servers as the zone's name servers, and one with each alone: AD every time
    resolvers = [start_unbound(tmp_path / "both", [s.port for s in servers], trust_anchor=ds[0]),
                 *(start_unbound(tmp_path / f"only{i}", s.port, trust_anchor=ds[0]) for i, s in enumerate(servers))]
    try:
        for unbound in resolvers:
            for name in ("deb", "v4", "_http._tcp.deb"):
                secure(unbound, f"{name}.{ZONE}", "SRV" if name.startswith("_") else "A")
            secure(unbound, f"deb.{ZONE}", "AAAA")
            secure(unbound, f"deb.{ZONE}", "TXT")
            secure(unbound, f"missing.{ZONE}", "A", rcode=dns.rcode.NXDOMAIN)
            secure(unbound, ZONE, "DNSKEY")
        for index in range(20):  # enough distinct names that the two-server resolver asks both
            secure(resolvers[0], f"n{index}.{ZONE}", "A", rcode=dns.rcode.NXDOMAIN)
        for unbound in resolvers:
            assert "bogus" not in unbound.log().lower()
    finally:
        for unbound in resolvers:
            unbound.stop()
    pem = copy.read_text()
    secret = "".join(pem.splitlines()[1:-1])[:40]  # a piece of the key's base64
    for server in servers:
        assert "PRIVATE KEY" not in server.log() and secret not in server.log()
        assert secret not in httpx.get(f"{server.status_url}/status.json", timeout=5).text


def test_a_rollover_step_on_one_server_reaches_the_other(pair: tuple[list[Server], list[Path], int],
                                                         request: pytest.FixtureRequest) -> None:
    servers, configs, old = pair
    how = "through the cluster's watch" if request.node.callspec.params["pair"] == "watch" else "read from etcd"
    servers[1].wait_for_log(rf"adopted the cluster's key tag {old}")
    began = time.monotonic()  # the command's own time included: its Python start, the etcd step, its reload
    started = dnsbalance("dnssec", "rollover", "start", "--config", str(configs[0]))
    assert started.returncode == 0 and "every name server of the cluster follows" in started.stdout, started
    new = int(started.stdout.split("key tag ")[1].split(",")[0])
    ran = time.monotonic() - began
    took = ran + until(lambda: len(dnskeys(servers[1])) == 2, 10, "the other server never published the next key")
    print(f"rollover start on ns1 ({how}): the command ran {ran:.2f}s; ns2 published the next key {took:.2f}s after "
          f"the command began")
    assert took - ran < 5 and took < 15  # after the command returned: at most a read interval and a build
    assert {dns.dnssec.key_id(rr) for rr in dnskeys(servers[1])} == {old, new}
    assert signers(servers[1], f"deb.{ZONE}", "A") == {old}  # the old key still signs
    assert (keys_of(configs[1]) / "next.key").read_bytes() == (keys_of(configs[0]) / "next.key").read_bytes()
    servers[1].wait_for_log(r"DNSSEC: the cluster's keys in service", timeout=20)
    assert f"the local copy follows ({how})" in servers[1].log()

    # the wait is counted from the cluster's record: the other server, which never ran `start`, refuses too
    early = dnsbalance("dnssec", "rollover", "switch", "--config", str(configs[1]))
    assert early.returncode == 1 and "too early to switch" in early.stderr, early
    began = time.monotonic()
    switched = dnsbalance("dnssec", "rollover", "switch", "--force", "--config", str(configs[1]))
    assert switched.returncode == 0, switched
    ran = time.monotonic() - began
    took = ran + until(lambda: signers(servers[0], f"deb.{ZONE}", "A") == {new}, 10, "ns1 never signed with it")
    print(f"rollover switch on ns2 ({how}): the command ran {ran:.2f}s; ns1 signed with the new key {took:.2f}s "
          f"after the command began")
    assert took - ran < 5 and took < 15  # after the command returned: at most a read interval and a build
    for server in servers:
        assert signers(server, ZONE, "DNSKEY") == {old, new}
        keys = dnskeys(server)
        validate_with(server, keys, f"deb.{ZONE}", "A")
    ds = [dnsbalance("dnssec", "ds", "--config", str(c)).stdout.split() for c in configs]
    assert ds[0] == ds[1] and int(ds[0][3]) == new

    finished = dnsbalance("dnssec", "rollover", "finish", "--force", "--config", str(configs[0]))
    assert finished.returncode == 0, finished
    until(lambda: len(dnskeys(servers[1])) == 1, 10, "ns2 still publishes the old key")
    assert not (keys_of(configs[1]) / "retiring.key").exists()
    for server in servers:
        assert signers(server, ZONE, "DNSKEY") == {new}
        state = httpx.get(f"{server.status_url}/status.json", timeout=5).json()["dnssec"]
        assert state["key_tag"] == new and state["source"] == "cluster"


@pytest.mark.parametrize("pair", ["read"], indirect=True)
def test_a_reload_onto_another_prefix_follows_the_keys_there(pair: tuple[list[Server], list[Path], int],
                                                             etcd: EtcdCluster) -> None:
    """A reload with other cluster settings replaces the key follower: under a prefix that holds no key yet, the
    server's copy becomes that cluster's key (create-only), and it signs on with the same key."""
    from dnsbalance.cluster.etcd import EtcdLink
    from dnsbalance.configuration.model import ClusterSettings

    servers, configs, tag = pair
    settings = configs[1] / "dnsbalance.yaml"
    settings.write_text(settings.read_text().replace("instance: ns2}", "instance: ns2, prefix: /moved/}"))
    assert dnsbalance("reload", "--config", str(configs[1])).returncode == 0
    servers[1].wait_for_log(rf"the cluster has no DNSSEC key yet: this server's \(tag {tag}\) becomes the "
                            rf"cluster's", timeout=10)
    link = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "test", "/moved/"), 2.0)
    try:
        assert link.get_prefix("/moved/dnssec/") == [("/moved/dnssec/zone.key",
                                                      (keys_of(configs[1]) / "zone.key").read_bytes())]
    finally:
        link.close()
    assert signers(servers[1], f"deb.{ZONE}", "A") == {tag}


def serve_once(config: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """`serve` that is expected to refuse (it stops within the timeout)."""
    done = subprocess.run([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config), "--listen",
                           "127.0.0.1:0", "--status", "off"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    log.write_text(done.stdout + done.stderr)
    return done


def test_a_local_key_the_cluster_lacks_is_refused_and_etcd_down_refuses_keygen(tmp_path: Path,
                                                                               etcd: EtcdCluster) -> None:
    first, second = member(tmp_path, 1, etcd), member(tmp_path, 2, etcd)
    made = dnsbalance("dnssec", "keygen", "--config", str(first))
    assert made.returncode == 0, made
    tag = int(made.stdout.split("key tag ")[1].split(",")[0])
    own = local_keygen(keys_of(second), Algorithm.ECDSAP256SHA256)  # made by hand, not through the cluster
    refused = serve_once(second, tmp_path / "refused.log")
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    assert f"tag {own.tag}" in output and f"tag {tag}" in output and "not the cluster's" in output, output
    assert "dnssec fetch --force" in output
    checked = dnsbalance("check", "--config", str(second))
    assert checked.returncode == 0 and "not the cluster's" in checked.stdout, checked
    status = dnsbalance("dnssec", "status", "--config", str(second))
    assert f"OTHER keys (tag {own.tag})" in status.stdout, status
    fetched = dnsbalance("dnssec", "fetch", "--config", str(second))
    assert fetched.returncode == 1 and "--force" in fetched.stderr, fetched
    fetched = dnsbalance("dnssec", "fetch", "--force", "--config", str(second))
    assert fetched.returncode == 0 and "set aside" in fetched.stdout, fetched
    aside = [p for p in keys_of(second).iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1 and (aside[0] / "zone.key").exists()  # kept, never deleted
    assert (keys_of(second) / "zone.key").read_bytes() == (keys_of(first) / "zone.key").read_bytes()
    assert dnsbalance("check", "--config", str(second)).stdout.count("dnssec:") == 0

    etcd.stop()  # etcd gone: keygen refuses, never a second key made silently
    third = member(tmp_path, 3, etcd)
    down = dnsbalance("dnssec", "keygen", "--config", str(third))
    assert down.returncode == 1 and "etcd cannot be reached" in down.stderr and "nothing was changed" in down.stderr
    assert not (keys_of(third) / "zone.key").exists()
    # a server with its copy starts and signs while etcd is away
    server = start_server(second, tmp_path / "down.log", ipv6=False)
    try:
        server.wait_for_log(r"etcd not reachable at start")
        assert signers(server, f"deb.{ZONE}", "A") == {tag}
        assert httpx.get(f"{server.status_url}/status.json", timeout=5).json()["dnssec"]["source"] == "cluster"
        # a key put in the folder by hand while it runs: a reload keeps signing with the cluster's key in service
        local_keygen(tmp_path / "hand", Algorithm.ECDSAP256SHA256)
        shutil.copy(tmp_path / "hand" / "zone.key", keys_of(second) / "zone.key")
        assert dnsbalance("reload", "--config", str(second)).returncode == 0
        server.wait_for_log(r"DNSSEC key: .*not a copy of the cluster's keys.*signing on with the keys in service "
                            rf"\(tag {tag}\)")
        assert signers(server, f"deb.{ZONE}", "A") == {tag}
    finally:
        server.stop()


def test_a_change_of_keys_that_moved_since_they_were_read_changes_nothing(etcd: EtcdCluster) -> None:
    """The transactions under keygen and every rollover step, against the real etcd: each compares every file's
    revision with the read it was made from, so of two commands at once, one changes the keys and the other
    nothing (and says so)."""
    from dnsbalance.cluster import keystore
    from dnsbalance.cluster.etcd import EtcdLink
    from dnsbalance.configuration.model import ClusterSettings

    prefix = "/dnsbalance/cdn.example.org/"
    link = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "test", prefix), 2.0)
    try:
        empty = keystore.read(link, prefix)
        assert keystore.commit(link, prefix, empty, {"zone.key": b"first"})
        assert not keystore.commit(link, prefix, empty, {"zone.key": b"second"})  # create-only: one key
        one = keystore.read(link, prefix)
        assert one.files == {"zone.key": b"first"}
        assert keystore.commit(link, prefix, one, {"zone.key": b"new", "retiring.key": b"first"})
        assert not keystore.commit(link, prefix, one, {"zone.key": b"other"})  # a step on a stale read
        assert not keystore.commit(link, prefix, one, {})  # nor a deletion
        assert keystore.read(link, prefix).files == {"zone.key": b"new", "retiring.key": b"first"}
    finally:
        link.close()
