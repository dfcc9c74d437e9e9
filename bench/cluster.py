#!/usr/bin/env python3
"""Benchmark: several name servers sharing one view through etcd (dnsbalance/cluster/). Everything on loopback.

1. etcd load and cycle time: N mirrors (1,000) served by a helper process on 127.0.x.y, and M instances (4)
   each probing them and exchanging with a real 3-member etcd (tests/etcd.py): etcd requests and bytes per cycle
   per instance (counted in the client), and the cycle time (probe + judge + etcd exchange) with and without it.
2. Time to leave: three real dnsbalance instances (interval I) and a mirror that two of them stop reaching, from
   that moment to its absence from every instance's answers; against one instance without a cluster; with the
   watch on the others' votes (`cluster.watch`, the default) and without it (votes read at each cycle only).

    python bench/cluster.py [--mirrors 1000] [--instances 4] [--cycles 5] [--interval 2] [--rounds 4] [--skip-load]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.health_cycle import SERVER, free_port, write_config
from dnsbalance.cluster.etcd import EtcdDown, EtcdLink
from dnsbalance.cluster.member import ClusterMember, read_prefix
from dnsbalance.configuration.load import load_config
from dnsbalance.configuration.model import ClusterSettings
from dnsbalance.health import policy
from dnsbalance.health.cycle import observe
from dnsbalance.health.fetch import new_client
from dnsbalance.health.settings import policy_settings
from dnsbalance.health.state import HealthState
from tests.etcd import EtcdCluster
from tests.harness import Server, make_config, start_server, write_mmdb
from tests.mirrors import Archive, Mirror, probe_at

SOURCES = ("127.0.0.11", "127.0.0.12", "127.0.0.13")


def load_and_cycles(etcd: EtcdCluster, mirrors: int, instances: int, cycles: int, interval: float) -> None:
    port = free_port()
    helper = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(mirrors), "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdout is not None and helper.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as folder:
            config = load_config(write_config(Path(folder), mirrors, port, 5.0, 200))
            settings = policy_settings(config)

            async def run() -> tuple[float, float, list[float], list[ClusterMember]]:
                client = new_client(200)
                members = [ClusterMember(ClusterSettings(tuple(etcd.endpoints), f"ns{i}", "/dnsbalance/bench/",
                                                         watch=False), interval, "digest") for i in range(instances)]
                try:
                    started = time.monotonic()  # one cycle without the cluster: probe and decide
                    observed = await observe(config, client, 200)
                    policy.next_state(HealthState(), observed, settings, observed.started)
                    alone = time.monotonic() - started
                    started = time.monotonic()  # the same with the cluster: probe, judge, exchange, decide
                    observed = await observe(config, client, 200)
                    own = policy.judge(observed, settings, {}, observed.started)
                    await members[0].exchange(own.verdicts, HealthState(), "digest")
                    extra = members[0].consensus(settings.known)
                    policy.next_state(HealthState(), dataclasses.replace(observed, external=extra), settings,
                                      observed.started)
                    shared = time.monotonic() - started
                    exchanges = []  # every instance, `cycles` times, on the same verdicts: etcd's share alone
                    for _ in range(cycles):
                        for member in members:
                            started = time.monotonic()
                            await member.exchange(own.verdicts, HealthState(), "digest")
                            member.consensus(settings.known)
                            exchanges.append(time.monotonic() - started)
                finally:
                    await client.aclose()
                return alone, shared, exchanges, members

            before = 1  # members[0] made one exchange in the timed cycle
            alone, shared, exchanges, members = asyncio.run(run())
        value = len(json.dumps(members[0].view.mine and sorted(members[0].view.mine.up)))
        counts = [cycles + (before if i == 0 else 0) for i in range(len(members))]
        per = [(m.link.traffic.requests / n, (m.link.traffic.sent + m.link.traffic.received) / n)
               for m, n in zip(members, counts)]
        print(f"etcd load, {mirrors} mirrors x {instances} instances, {cycles} cycles each")
        print(f"  requests per cycle per instance   {statistics.mean(r for r, _ in per):.1f} "
              f"(lease keep-alive, one put, one range read; +1 compare-and-swap on a push; the watch adds one "
              f"long-lived stream, reopened after {1.5 * 120 + 4:.0f} s of silence, which a live cluster never has)")
        print(f"  bytes per cycle per instance      {statistics.mean(b for _, b in per) / 1024:.0f} KiB "
              f"(sent + received; one vote is about {value / 1024:.0f} KiB of JSON, base64 on the wire, "
              f"and the read returns all {instances})")
        print(f"  at a 120 s interval               {statistics.mean(r for r, _ in per) * instances / 120:.2f} "
              f"requests/s for the whole cluster")
        print(f"cycle time, {mirrors} mirrors     without cluster {alone:.2f} s, with cluster {shared:.2f} s "
              f"(probing dominates and varies with the machine's load); the etcd exchange alone: median "
              f"{statistics.median(exchanges) * 1000:.0f} ms, worst {max(exchanges) * 1000:.0f} ms")
        for member in members:
            member.close()
    finally:
        helper.kill()
        helper.wait()


def answers(server: Server, address: str) -> bool:
    """The address is in at least one of a few answers (each answer holds 3 of the 4 JP mirrors)."""
    for _ in range(8):
        reply = server.query("deb.cdn.example.org", subnet="1.0.16.0/24")
        if any(rr.address == address for rrset in reply.answer for rr in rrset):
            return True
    return False


def configure(folder: Path, fleet: dict[str, Mirror], interval: float, source: str, cluster: str) -> Path:
    probe_at(folder, fleet)
    with (folder / "dnsbalance.yaml").open("a") as handle:
        # the fixture's documentation addresses are never probed, only each URL (loopback), as in test_cluster
        handle.write(f"health: {{interval: {interval}, timeout: 2, master: '{fleet['master'].url}', "
                     f"source: {source}, addresses: false, vhost: false, traces: false}}\n{cluster}")
    return folder


def time_to_leave(servers: list[Server], mirror: Mirror, refused: set[str]) -> float:
    """From the mirror going unreachable (for `refused`) to its absence from every server's answers."""
    mirror.refused = refused
    started = time.monotonic()
    while any(answers(s, "192.0.2.1") for s in servers):
        assert time.monotonic() - started < 60, "never left"
        time.sleep(0.05)
    return time.monotonic() - started


def majority_formed(link: EtcdLink, prefix: str, target: str, needed: int, stop: threading.Event,
                    when: list[float]) -> None:
    """Polls etcd (every 20 ms) for the moment `needed` live votes see `target` down: the majority forming."""
    while not stop.is_set() and not when:
        try:
            read = read_prefix(link.get_prefix(prefix), prefix)
        except EtcdDown:
            continue
        if sum(target in v.down for v in read.votes) >= needed:
            when.append(time.monotonic())
        time.sleep(0.02)


def time_to_leave_shared(servers: list[Server], mirror: Mirror, refused: set[str], link: EtcdLink,
                         prefix: str) -> tuple[float, float]:
    """From the mirror going unreachable, and from the majority forming in etcd, to its absence from every
    server's answers."""
    when: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=majority_formed, args=(link, prefix, "jp1", 2, stop, when), daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        total = time_to_leave(servers, mirror, refused)
    finally:
        stop.set()
        watcher.join(5)
    ended = started + total
    return total, ended - when[0] if when else float("nan")


def leave(etcd: EtcdCluster, interval: float, base: Path, rounds: int) -> None:
    mmdb = write_mmdb(base / "test.mmdb")
    names = ["jp1", "jp2", "jp3", "jp4", "jpdrained", "as1", "as2", "eu1", "eu2", "de1", "de2", "kr1", "def1",
             "def2", "v6only", "master"]
    archive = Archive()
    fleet = {name: Mirror(archive) for name in names}
    servers: list[Server] = []
    try:
        single = start_server(configure(make_config(base / "single", mmdb), fleet, interval, SOURCES[0], ""),
                              base / "single.log", ipv6=False)
        servers.append(single)
        single.wait_cycles(2, 30)
        alone = [time_to_leave([single], fleet["jp1"], {SOURCES[0]})]
        fleet["jp1"].refused = set()
        single.wait_cycles(2, 30)
        alone.append(time_to_leave([single], fleet["jp1"], {SOURCES[0]}))
        single.stop()
        fleet["jp1"].refused = set()
        shared = {}
        for watch in (True, False):
            three = []
            prefix = f"/dnsbalance/bench-{'watch' if watch else 'cycle'}/"
            for index in range(3):
                cluster = (f"cluster: {{etcd: {json.dumps(etcd.endpoints)}, instance: ns{index + 1}, "
                           f"prefix: '{prefix}', watch: {'true' if watch else 'false'}}}\n")
                name = f"ns{index + 1}-{'watch' if watch else 'cycle'}"
                folder = configure(make_config(base / name, mmdb), fleet, interval, SOURCES[index], cluster)
                three.append(start_server(folder, base / f"{name}.log", ipv6=False))
            servers += three
            for server in three:
                server.wait_cycles(3, 30)
            shared[watch] = []
            link = EtcdLink(ClusterSettings(tuple(etcd.endpoints), "bench", prefix), 2.0)
            for _ in range(rounds):
                missing = [s for s in three if not answers(s, "192.0.2.1")]
                assert not missing, "jp1 not back: " + missing[0].log()[-6000:]
                shared[watch].append(time_to_leave_shared(three, fleet["jp1"], {SOURCES[0], SOURCES[1]}, link,
                                                          prefix))
                fleet["jp1"].refused = set()
                for server in three:
                    server.wait_cycles(3, 30)
            link.close()
            for server in three:
                server.stop()
        print(f"time to leave every instance's answers, interval {interval:g} s, fall 1 (seconds)")
        print(f"  one instance, no cluster, from the mirror going down: {' '.join(f'{t:.2f}' for t in alone)}")
        for watch, label in ((False, "without the watch (votes read at each cycle)"), (True, "with the watch")):
            totals = [t for t, _ in shared[watch]]
            after = [a for _, a in shared[watch]]
            print(f"  3 instances, 2 of 3 see it down, {label}:")
            print(f"    from the mirror going down     {' '.join(f'{t:.2f}' for t in totals)} "
                  f"(median {statistics.median(totals):.2f}, worst {max(totals):.2f})")
            print(f"    from the majority forming      {' '.join(f'{t:.2f}' for t in after)} "
                  f"(median {statistics.median(after):.2f}, worst {max(after):.2f})")
    finally:
        for server in servers:
            server.stop()
        for mirror in fleet.values():
            mirror.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirrors", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=4, help="times the mirror leaves, with and without the watch")
    parser.add_argument("--skip-load", action="store_true", help="only the time to leave")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "etcd").mkdir()
        etcd = EtcdCluster(Path(folder) / "etcd").start()
        try:
            if not args.skip_load:
                load_and_cycles(etcd, args.mirrors, args.instances, args.cycles, 120.0)
            leave(etcd, args.interval, Path(folder), args.rounds)
        finally:
            etcd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
