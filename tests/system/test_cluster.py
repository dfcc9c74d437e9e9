"""Several name servers, one view (dnsbalance/cluster/): a real three-member etcd cluster on loopback
(tests/etcd.py) and three real dnsbalance instances probing from 127.0.0.11, .12 and .13 (health.source); the
mirrors are real HTTP servers on 127.0.0.1 that refuse chosen source addresses (a mirror one network cannot
reach)."""
from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dnsbalance.cluster.etcd import EtcdDown, EtcdLink
from dnsbalance.configuration.model import ClusterSettings
from tests.etcd import EtcdCluster, certificates, have_etcd, have_etcdctl
from tests.harness import Server, answer_set, make_config, start_server
from tests.mirrors import Mirror, probe_at

pytestmark = pytest.mark.skipif(not have_etcd(), reason="etcd-server is not installed (tools/install-test-packages)")

JP = {"jp1": "192.0.2.1", "jp2": "192.0.2.2", "jp3": "192.0.2.3", "jp4": "192.0.2.4"}
SOURCES = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
PREFIX = "/dnsbalance/cdn.example.org/"


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    (tmp_path / "etcd").mkdir()
    cluster = EtcdCluster(tmp_path / "etcd").start()
    yield cluster
    cluster.stop()


def cluster_config(base: Path, mmdb: Path, fleet: dict[str, Mirror], index: int, endpoints: list[str],
                   extra: str = "", health: str = "", interval: float = 1) -> Path:
    """Instance ns{index+1}'s own folder (and so its own state folder), probing from its own address."""
    folder = make_config(base / f"ns{index + 1}", mmdb)
    probe_at(folder, fleet)
    with (folder / "dnsbalance.yaml").open("a") as handle:
        # a probe timeout of 2 s, not 0.5: the mirrors are served by this test's own process, which a loaded machine
        # can hold up for a second; every probe of a cycle then times out, which the vote leaves out (the prober's
        # fault) and the consensus decides without it. Unreachable mirrors here refuse at once: no cycle waits.
        # The fixture's mirrors keep their documentation addresses: each URL (a test server on 127.0.0.1) is what
        # the instances probe and vote on, as tests/harness.py probe_everything has it.
        handle.write(f"health: {{interval: {interval:g}, timeout: 2, master: '{fleet['master'].url}', "
                     f"source: {SOURCES[index]}, addresses: false, vhost: false, traces: false{health}}}\n"
                     f"cluster: {{etcd: {json.dumps(endpoints)}, instance: ns{index + 1}{extra}}}\n")
    return folder


def jp_answers(server: Server, rounds: int = 150) -> set[str]:  # jp4 is in ~1 answer in 8
    return answer_set(server, rounds)


def until(predicate, timeout: float = 20.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.2)


def status(server: Server) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{server.status_url}/status.json", timeout=5).json()


def peers(server: Server) -> int:
    cluster = status(server)["cluster"]
    return len(cluster["peers"]) if cluster["connected"] else -1


def start_three(tmp_path: Path, country_mmdb: Path, zone_fleet: dict[str, Mirror], etcd: EtcdCluster,
                health: str = "") -> Iterator[list[Server]]:
    servers: list[Server] = []
    try:
        for index in range(3):
            folder = cluster_config(tmp_path, country_mmdb, zone_fleet, index, etcd.endpoints, health=health)
            servers.append(start_server(folder, tmp_path / f"ns{index + 1}.log", ipv6=False))
        for server in servers:
            until(lambda s=server: peers(s) == 2, what="every instance sees the two others")  # type: ignore[misc]
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def three(tmp_path: Path, country_mmdb: Path, zone_fleet: dict[str, Mirror], etcd: EtcdCluster
          ) -> Iterator[list[Server]]:
    yield from start_three(tmp_path, country_mmdb, zone_fleet, etcd)


def test_a_mirror_one_vantage_point_cannot_reach_stays_one_two_cannot_reach_leaves_all(
        three: list[Server], zone_fleet: dict[str, Mirror], tmp_path: Path, country_mmdb: Path,
        etcd: EtcdCluster) -> None:
    for server in three:
        assert jp_answers(server) == set(JP.values())
    zone_fleet["jp3"].refused = {SOURCES[0]}  # ns1's network cannot reach jp3
    zone_fleet["jp2"].refused = {SOURCES[0], SOURCES[1]}  # ns1's and ns2's cannot reach jp2
    for server in three:
        server.wait_cycles(3, timeout=20)
    for server in three:  # ns3's own probes see jp2 up: the cluster has it out all the same
        assert jp_answers(server) == {JP["jp1"], JP["jp3"], JP["jp4"]}, server.log()[-3000:]
    targets = status(three[2])["cluster"]["targets"]
    assert targets["jp2"]["up"] is False and sorted(targets["jp2"]["down_votes"]) == ["ns1", "ns2"]
    assert targets["jp2"]["seen"] == {"ns3": True, "ns1": False, "ns2": False}
    assert targets["jp3"]["up"] is True and targets["jp3"]["down_votes"] == ["ns1"]
    assert "jp2 is DOWN: down by cluster: 2 of 3 vantage points see it down" in three[2].log()
    first = status(three[0])["cluster"]
    assert not first["drift"] and len(first["configurations"]) == 1  # each host's own lines are not drift
    metrics = httpx.get(f"{three[0].status_url}/metrics", timeout=5).text
    assert "dnsbalance_cluster_connected 1.0" in metrics and "dnsbalance_cluster_peers 2.0" in metrics
    page = httpx.get(three[0].status_url + "/", timeout=5).text
    assert "id='cluster-targets'" in page and "cluster-drift" not in page
    # `dnsbalance probe` on ns3's host: each vantage point's view next to its own probe and the consensus
    probe = subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--config", str(tmp_path / "ns3")],
                           capture_output=True, text=True, timeout=60)
    out = probe.stdout
    assert "live instances: ns1, ns2, ns3" in out, out + probe.stderr
    assert re.search(r"^jp2\s+down\s+down\s+up\s+up\s+DOWN \(2/3 down, 2 needed\)$", out, re.M), out
    assert re.search(r"^jp3\s+down\s+up\s+up\s+up\s+up \(1/3 down, 2 needed\)$", out, re.M), out
    # the same with --json, for a monitoring system
    probe = subprocess.run([sys.executable, "-m", "dnsbalance", "probe", "--json", "--config", str(tmp_path / "ns3")],
                           capture_output=True, text=True, timeout=60)
    seen = json.loads(probe.stdout)["cluster"]
    assert seen["connected"] is True and seen["live"] == ["ns1", "ns2", "ns3"], probe.stdout + probe.stderr
    assert seen["targets"]["jp2"]["seen"] == {"ns1": False, "ns2": False, "ns3": True}
    assert seen["targets"]["jp2"]["this_probe"] is True and seen["targets"]["jp2"]["up"] is False
    assert seen["targets"]["jp3"]["down_votes"] == ["ns1"] and seen["targets"]["jp3"]["up"] is True

    # ns3 restarts with an empty state folder: its first answers already leave jp2 out (the cluster's verdict,
    # read before its first table), although its own probes would keep it
    three[2].stop()
    shutil.rmtree(tmp_path / "ns3" / "state")
    three[2] = start_server(tmp_path / "ns3", tmp_path / "ns3-again.log", ipv6=False)
    assert jp_answers(three[2], rounds=80) == {JP["jp1"], JP["jp3"], JP["jp4"]}
    # ns1's and ns2's votes at least (ns3's own lease, three 1-s intervals, may run out while it restarts)
    assert re.search(r"cluster: started from [23] live instances' verdicts \(ns1, ns2", three[2].log())
    assert "out: jp2" in three[2].log()


def test_etcd_without_quorum_never_costs_a_query_and_is_rejoined(three: list[Server], etcd: EtcdCluster,
                                                                 zone_fleet: dict[str, Mirror]) -> None:
    zone_fleet["jp3"].refused = {SOURCES[0]}
    for server in three:
        server.wait_cycles(2, timeout=20)
    assert jp_answers(three[0]) == set(JP.values())  # one of three: in, even on ns1

    lost: list[str] = []
    asked = [0]
    stop = threading.Event()

    def ask() -> None:  # every instance asked all along; a lost or failed query is counted
        while not stop.is_set():
            for server in three:
                try:
                    reply = server.query("deb.cdn.example.org", subnet="1.0.16.0/24")
                    asked[0] += 1
                    if not reply.answer:
                        lost.append(f"empty answer from {server.port}")
                except Exception as exc:  # noqa: BLE001 - any failure is what the test counts
                    lost.append(f"{server.port}: {exc!r}")
            time.sleep(0.01)

    load = threading.Thread(target=ask, daemon=True)
    load.start()
    try:
        etcd.stop_member(etcd.members[0], kill=True)
        etcd.stop_member(etcd.members[1], kill=True)
        for server in three:
            server.wait_for_log(r"cluster: etcd unreachable", timeout=20)
        # on their own verdicts, which still follow the mirrors: ns1 drops jp3 (its own probe), all drop jp1
        zone_fleet["jp1"].refused = set(SOURCES)
        for server in three:
            server.wait_cycles(3, timeout=30)
        assert jp_answers(three[0]) == {JP["jp2"], JP["jp4"]}
        assert jp_answers(three[1]) == {JP["jp2"], JP["jp3"], JP["jp4"]}
        assert status(three[0])["cluster"]["connected"] is False
        page = httpx.get(three[0].status_url + "/", timeout=5).text
        assert "id='cluster-down'" in page

        etcd.start_member(etcd.members[0], wait=False)
        etcd.start_member(etcd.members[1], wait=False)
        etcd.wait_healthy(30)
        for server in three:
            server.wait_for_log(r"cluster: back on etcd", timeout=30)
            until(lambda s=server: peers(s) == 2, what="rejoined")  # type: ignore[misc]
            server.wait_cycles(2, timeout=20)
            # the watch was cut with the quorum (its member lost the leader) and is open again
            assert "cluster: watch on etcd lost" in server.log()
            server.wait_for_log(r"cluster: watching etcd again", timeout=30)
        assert jp_answers(three[0]) == {JP["jp2"], JP["jp3"], JP["jp4"]}  # the consensus again: jp3 back
    finally:
        stop.set()
        load.join(10)
    assert asked[0] > 300 and lost == [], lost[:5]
    for server in three:  # once on the way down, once on the way back
        assert server.log().count("cluster: etcd unreachable") == 1
        assert server.log().count("cluster: back on etcd") == 1


def test_hostile_values_in_the_prefix_are_ignored_and_told_once(three: list[Server], etcd: EtcdCluster) -> None:
    link = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "test", PREFIX), 2.0)
    try:
        link.put(PREFIX + "votes/garbage", b"\x00\xff{{{ not json")
        link.put(PREFIX + "votes/huge", b'{"v":1,"i":"huge","up":["' + b"x" * 600_000 + b'"]}')
        link.put(PREFIX + "votes/liar", b'{"v":1,"i":"ns1","c":"x","n":1,"up":[],"down":["jp1","jp2"],"out":[]}')
        link.put(PREFIX + "votes/bad..name/x", b"{}")
    finally:
        link.close()
    for server in three:
        server.wait_cycles(3, timeout=20)
    for server in three:
        log = server.log()
        assert log.count("ignored /dnsbalance/cdn.example.org/votes/garbage: not JSON") == 1
        assert "votes/huge: 6000" in log and "votes/liar: names instance 'ns1'" in log
        assert peers(server) == 2  # the impostors are no vantage points
        assert jp_answers(server) == set(JP.values())  # and their votes count for nothing
        assert server.process.poll() is None
    assert len(status(three[0])["cluster"]["ignored"]) == 4


def test_an_etcd_that_accepts_and_never_answers_delays_nothing(tmp_path: Path, country_mmdb: Path,
                                                               zone_fleet: dict[str, Mirror]) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections complete in the kernel's backlog; nothing is ever read or sent
    folder = cluster_config(tmp_path, country_mmdb, zone_fleet, 0, [f"http://127.0.0.1:{silent.getsockname()[1]}"],
                            extra=", user: dnsbalance, password: s3cret-pw")
    started = time.monotonic()
    server = start_server(folder, tmp_path / "ns1.log", ipv6=False)
    try:
        assert time.monotonic() - started < 10
        server.wait_for_log("cluster: etcd not reachable at start")
        assert jp_answers(server) == set(JP.values())
        zone_fleet["jp3"].refused = {SOURCES[0]}
        began = time.monotonic()
        server.wait_cycles(5, timeout=30)  # every second still: each exchange is cut off after a second
        assert time.monotonic() - began < 5 * 2.2, server.log()[-3000:]
        assert jp_answers(server) == {JP["jp1"], JP["jp2"], JP["jp4"]}  # on its own verdicts
        assert server.log().count("cluster: etcd unreachable") == 1
        assert status(server)["cluster"]["connected"] is False
        shown = [server.log(), httpx.get(server.status_url + "/status.json", timeout=5).text,
                 httpx.get(server.status_url + "/", timeout=5).text,
                 httpx.get(server.status_url + "/metrics", timeout=5).text]
        assert "dnsbalance_cluster_connected 0.0" in shown[3] and "id='cluster-down'" in shown[2]
        assert not any("s3cret-pw" in text for text in shown)  # credentials never in a log or page
    finally:
        server.stop()
        silent.close()


def test_a_push_seen_by_one_instance_moves_the_reference_for_all(tmp_path: Path, country_mmdb: Path,
                                                                  zone_fleet: dict[str, Mirror],
                                                                  etcd: EtcdCluster) -> None:
    zone_fleet["master"].refused = {SOURCES[1]}  # ns2 never reads the master: what it knows of pushes is shared
    for servers in start_three(tmp_path, country_mmdb, zone_fleet, etcd, health=", grace: 0"):
        before = zone_fleet["master"].archive.serial
        zone_fleet["jp3"].serial = before  # jp3 stays on the old serial
        pushed = zone_fleet["master"].archive.publish()
        for server in servers:
            server.wait_cycles(3, timeout=20)
        for server in servers:
            jp3 = next(m for m in status(server)["mirrors"] if m["name"] == "jp3")
            assert jp3["archives"][0]["reference"] == str(pushed), server.log()[-2000:]
        ns2 = servers[1].log()
        assert "master unreadable" in ns2 and f"moved to {pushed}" not in ns2
        # ns2 judged jp3 by the reference the others moved: its own probe, not only the consensus, sees it stale
        assert status(servers[1])["cluster"]["targets"]["jp3"]["seen"]["ns2"] is False
        moved = sum(s.log().count(f"push reference of default moved to {pushed}") for s in servers)
        assert moved == 1  # compare-and-swap: one instance moved it, the others found it moved
        assert jp_answers(servers[1]) == {JP["jp1"], JP["jp2"], JP["jp4"]}


def rewrite(folder: Path, health: str, cluster: str) -> None:
    """The instance's own two lines (health, cluster) replaced: what an operator edits before a reload."""
    path = folder / "dnsbalance.yaml"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:-2], health, cluster]) + "\n")


def test_a_reload_rejoins_with_new_cluster_settings_and_source_without_a_gap(
        three: list[Server], zone_fleet: dict[str, Mirror], tmp_path: Path, etcd: EtcdCluster) -> None:
    link = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "test", PREFIX), 2.0)
    try:  # a writer no allow-list knows: it sees every JP mirror down
        link.put(PREFIX + "votes/ns9", json.dumps({"v": 1, "i": "ns9", "c": "x", "n": 1, "up": [], "out": [],
                                                   "down": ["jp1", "jp2", "jp3", "jp4"]}).encode())
    finally:
        link.close()
    zone_fleet["jp3"].refused = {"127.0.0.14"}  # only the new source address cannot reach jp3
    lost: list[str] = []
    asked = [0]
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                if not three[0].query("deb.cdn.example.org", subnet="1.0.16.0/24").answer:
                    lost.append("empty answer")
                asked[0] += 1
            except Exception as exc:  # noqa: BLE001 - any failure is what the test counts
                lost.append(repr(exc))
            time.sleep(0.005)

    load = threading.Thread(target=ask, daemon=True)
    load.start()
    try:
        rewrite(tmp_path / "ns1", f"health: {{interval: 1, timeout: 2, master: '{zone_fleet['master'].url}', "
                                  "source: 127.0.0.14, addresses: false, vhost: false, traces: false}",
                f"cluster: {{etcd: {json.dumps(etcd.endpoints)}, instance: ns1-new, "
                "instances: [ns1-new, ns2, ns3]}")
        three[0].process.send_signal(signal.SIGHUP)
        three[0].wait_for_log(r"cluster: rejoined as ns1-new on 3 etcd endpoint", timeout=20)
        three[0].wait_for_log(r"health: probes leave from 127.0.0.14", timeout=20)
        # the others count the new name and no longer the old one (its vote withdrawn with its lease)
        until(lambda: sorted(status(three[1])["cluster"]["peers"]) == ["ns1-new", "ns3", "ns9"],
              what="ns2 sees ns1-new, not ns1")
        until(lambda: status(three[0])["cluster"]["targets"].get("jp3", {}).get("seen", {}).get("ns1-new") is False,
              what="ns1-new probes from its new source, which jp3 refuses")
        three[0].wait_cycles(2, timeout=20)
    finally:
        stop.set()
        load.join(10)
    assert asked[0] > 100 and lost == [], lost[:5]  # no gap in answering
    cluster = status(three[0])["cluster"]
    assert cluster["instance"] == "ns1-new" and sorted(cluster["peers"]) == ["ns2", "ns3"]
    assert cluster["unknown_writers"] == ["ns9"]  # the allow-list: ns9's vote counts for nothing here
    assert jp_answers(three[0]) == set(JP.values())  # jp3: 1 of 3 down; ns9's four downs ignored
    assert three[0].log().count("votes/ns9: ns9 is not in cluster.instances") == 1  # told once
    assert cluster["drift"]  # the others have no allow-list: a setting every name server should share
    page = httpx.get(three[0].status_url + "/", timeout=5).text
    assert "Unknown writers (not in cluster.instances, ignored): ns9" in page and "id='cluster-unknown'" in page


def secrets_absent(server: Server, secrets: list[str]) -> None:
    """No credential in the log, status.json, the page or /metrics."""
    shown = [server.log()] + [httpx.get(server.status_url + path, timeout=5).text
                              for path in ("/status.json", "/", "/metrics")]
    for secret in secrets:
        assert not any(secret in text for text in shown), "a credential is shown"


def fake_votes_take_jp2_out(server: Server, link: EtcdLink) -> None:
    """Two more vantage points, written by the test, see jp2 down: 2 of 3, out on the server between its cycles
    (the watch brings them over the same TLS or authenticated connection)."""
    for name in ("ns8", "ns9"):
        link.put(PREFIX + f"votes/{name}", json.dumps({"v": 1, "i": name, "c": "x", "n": 1, "up": ["jp1"],
                                                       "down": ["jp2"], "out": []}).encode())
    until(lambda: jp_answers(server, rounds=60) == {JP["jp1"], JP["jp3"], JP["jp4"]}, what="jp2 out")


@pytest.mark.skipif(not have_etcdctl(), reason="etcdctl (etcd-client) is not installed")
def test_etcd_over_tls_with_a_client_certificate(tmp_path: Path, country_mmdb: Path,
                                                  zone_fleet: dict[str, Mirror]) -> None:
    certs = certificates(tmp_path / "tls")
    (tmp_path / "etcd").mkdir()
    etcd = EtcdCluster(tmp_path / "etcd", size=1, tls=certs).start()
    # a 30-s interval: what the others write reaches this instance through its watch, between its cycles
    folder = cluster_config(tmp_path, country_mmdb, zone_fleet, 0, etcd.endpoints, interval=30,
                            extra=f", ca: '{certs.ca}', cert: '{certs.client}', key: '{certs.client_key}'")
    server = start_server(folder, tmp_path / "ns1.log", ipv6=False)
    secure = ClusterSettings(tuple(etcd.endpoints), "test", PREFIX, ca=certs.ca, cert=certs.client,
                             key=certs.client_key)
    link = EtcdLink(secure, 5.0)
    try:
        server.wait_for_log("cluster: connected to etcd", timeout=20)
        server.wait_for_log("cluster: watching etcd", timeout=20)
        assert PREFIX + "votes/ns1" in dict(link.get_prefix(PREFIX))  # its vote, written over TLS
        anonymous = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "x", PREFIX, ca=certs.ca), 2.0)
        with pytest.raises(EtcdDown):  # no client certificate: etcd refuses
            anonymous.get_prefix(PREFIX)
        anonymous.close()
        began = time.monotonic()
        fake_votes_take_jp2_out(server, link)
        assert time.monotonic() - began < 15  # not at the next cycle, up to 30 s away
        assert "the others' votes moved a target between cycles" in server.log()
        key = certs.client_key.read_text().splitlines()[1]  # a line of the private key
        secrets_absent(server, [key])
        assert status(server)["cluster"]["connected"] is True
    finally:
        link.close()
        server.stop()
        etcd.stop()


@pytest.mark.skipif(not have_etcdctl(), reason="etcdctl (etcd-client) is not installed")
def test_etcd_with_user_and_password(tmp_path: Path, country_mmdb: Path, zone_fleet: dict[str, Mirror]) -> None:
    (tmp_path / "etcd").mkdir()
    etcd = EtcdCluster(tmp_path / "etcd", size=1).start()
    password = "pw-Zq81-never-shown"
    etcd.etcdctl("user", "add", "root:root-pw-Zq82")
    etcd.etcdctl("user", "add", f"dnsbalance:{password}")
    etcd.etcdctl("role", "add", "dnsbalance-rw")
    etcd.etcdctl("role", "grant-permission", "dnsbalance-rw", "--prefix=true", "readwrite", "/dnsbalance/")
    etcd.etcdctl("user", "grant-role", "dnsbalance", "dnsbalance-rw")
    etcd.etcdctl("auth", "enable")
    folder = cluster_config(tmp_path, country_mmdb, zone_fleet, 0, etcd.endpoints,
                            extra=f", user: dnsbalance, password: {password}")
    server = start_server(folder, tmp_path / "ns1.log", ipv6=False)
    link = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "test", PREFIX, user="dnsbalance", password=password), 5.0)
    try:
        server.wait_for_log("cluster: connected to etcd", timeout=20)
        server.wait_for_log("cluster: watching etcd", timeout=20)
        assert PREFIX + "votes/ns1" in dict(link.get_prefix(PREFIX))
        stranger = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "x", PREFIX), 2.0)
        with pytest.raises(EtcdDown):  # without a user, etcd refuses
            stranger.get_prefix(PREFIX)
        stranger.close()
        # authentication off and on again: every token etcd gave is void; the instance authenticates again
        etcd.etcdctl("auth", "disable", user="root:root-pw-Zq82")
        etcd.etcdctl("auth", "enable")
        server.wait_cycles(3, timeout=20)
        fake_votes_take_jp2_out(server, link)
        assert "cluster: etcd unreachable" not in server.log()
        assert status(server)["cluster"]["connected"] is True
        secrets_absent(server, [password, "root-pw-Zq82"])
    finally:
        link.close()
        server.stop()
        etcd.stop()


def stop_time(server: Server) -> float:
    """Seconds from SIGTERM to the process's exit."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=15)
    return time.monotonic() - started


def test_a_graceful_stop_withdraws_the_vote_at_once_and_a_silent_etcd_delays_it_a_second_at_most(
        tmp_path: Path, country_mmdb: Path, zone_fleet: dict[str, Mirror]) -> None:
    (tmp_path / "etcd").mkdir()
    etcd = EtcdCluster(tmp_path / "etcd", size=1).start()
    link = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "test", PREFIX), 2.0)
    servers: list[Server] = []
    try:  # at a 6-s interval a vote's lease is 18 s: an expiry could not pass for a withdrawal
        for index in range(2):
            folder = cluster_config(tmp_path, country_mmdb, zone_fleet, index, etcd.endpoints, interval=6)
            servers.append(start_server(folder, tmp_path / f"ns{index + 1}.log", ipv6=False))
        for server in servers:
            until(lambda s=server: peers(s) == 1, timeout=30, what="each instance sees the other")  # type: ignore
        live = stop_time(servers[0])
        votes = [key for key, _ in link.get_prefix(PREFIX + "votes/")]
        assert votes == [PREFIX + "votes/ns2"], votes  # ns1's went with its process, not 18 s later
        assert "cluster: vote withdrawn at stop" in servers[0].log()
        gone = time.monotonic()
        until(lambda: peers(servers[1]) == 0, timeout=5, what="ns2 still counts ns1 as a live vantage point")
        noticed = time.monotonic() - gone
        member = etcd.members[0]
        assert member.process is not None
        member.process.send_signal(signal.SIGSTOP)  # etcd silent: connections accepted, nothing answered
        try:
            silent = stop_time(servers[1])
        finally:
            member.process.send_signal(signal.SIGCONT)
        assert "cluster: vote not withdrawn at stop" in servers[1].log(), servers[1].log()[-2000:]
        print(f"stop with etcd answering {live:.2f}s (ns2 saw ns1 gone {noticed:.2f}s later); "
              f"with etcd silent {silent:.2f}s")
        assert silent < live + 1.5, (live, silent)
    finally:
        for server in servers:
            server.stop()
        link.close()
        etcd.stop()
