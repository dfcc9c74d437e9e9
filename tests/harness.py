"""The test harness: a GeoIP database written at test time, config folders, and the real server on loopback."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dns.edns
import dns.message
import dns.query
import httpx
from mmdb_writer import MMDBWriter
from netaddr import IPSet

if TYPE_CHECKING:
    from dnsbalance.ranking.active import ActiveTable
    from dnsbalance.serving.balancer import Balancer
    from tests.mirrors import Mirror

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Test networks -> (country, continent). Public-looking ranges, used only inside DNS messages (ECS);
# 127.0.0.2 and 127.0.0.3 let a client's own source address be located without ECS.
NETWORKS = {
    "1.0.16.0/20": ("JP", "AS"),
    "1.0.32.0/20": ("CN", "AS"),
    "2.0.0.0/16": ("FR", "EU"),
    "3.0.0.0/16": ("DE", "EU"),
    "4.0.0.0/16": ("BR", "SA"),
    "5.0.0.0/16": ("KR", "AS"),
    "127.0.0.2/32": ("JP", "AS"),
    "127.0.0.3/32": ("DE", "EU"),
    "2001:200::/32": ("JP", "AS"),
    "2a00:1000::/32": ("DE", "EU"),
}


def write_mmdb(path: Path, database_type: str = "GeoLite2-Country", city: bool = False,
               with_continent: bool = True) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type,
                        description={"en": "dnsbalance test database"})
    for network, (country, continent) in NETWORKS.items():
        record: dict = {"country": {"iso_code": country, "names": {"en": country}}}
        if with_continent:
            record["continent"] = {"code": continent}
        if city:
            record["city"] = {"names": {"en": f"Capital of {country}"}}
            record["location"] = {"latitude": 1.5, "longitude": 2.5}
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


def make_config(target: Path, mmdb: Path, source: Path = FIXTURES / "zone") -> Path:
    shutil.copytree(source, target)
    shutil.copy(mmdb, target / "test.mmdb")
    return target


def fixture_balancer(target: Path, mmdb: Path, signed: bool = False) -> Balancer:
    """A Balancer over the fixture zone, in this process; `signed`: the zone signed (`dnssec: {sign: true}`, an
    ECDSA key made), so DO answers carry their set's presigned RRSIG."""
    from dnsbalance.configuration.model import Algorithm
    from dnsbalance.dnssec.keys import keygen
    from dnsbalance.serving.balancer import Balancer
    from dnsbalance.serving.inputs import load

    config = make_config(target, mmdb)
    if signed:
        with (config / "dnsbalance.yaml").open("a") as handle:
            handle.write("dnssec: {sign: true}\n")
    loaded, problems = load(config)
    assert loaded is not None, problems
    if signed:
        keygen(loaded.config.settings.key_dir, Algorithm.ECDSAP256SHA256)
    return Balancer(loaded, signing=signed)


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    port6: int | None
    log_path: Path
    status_port: int | None = None

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def query(self, name: str, rdtype: str = "A", *, tcp: bool = False, edns: int | None = 0,
              subnet: str | None = None, payload: int = 1232, source: str = "127.0.0.1",
              host: str = "127.0.0.1") -> dns.message.Message:
        options = []
        if subnet is not None:
            address, prefix = subnet.split("/")
            options.append(dns.edns.ECSOption(address, int(prefix)))
        if edns is None:
            message = dns.message.make_query(name, rdtype, use_edns=False)
        else:
            message = dns.message.make_query(name, rdtype, use_edns=edns, options=options or None,
                                             payload=payload)
        port = self.port6 if ":" in host else self.port
        send = dns.query.tcp if tcp else dns.query.udp
        kwargs = {"source": source} if ":" not in host else {}
        return send(message, host, port=port, timeout=3, ignore_trailing=False, **kwargs)

    def wait_for_log(self, pattern: str, timeout: float = 10) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"server exited ({self.process.returncode}):\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r} within {timeout}s:\n{self.log()}")

    def cycles(self) -> int:
        """Health cycles the server has finished: its table in service (or kept), or failed."""
        text = self.log()
        return text.count("health cycle done:") + text.count("health cycle failed")

    def wait_cycles(self, count: int, timeout: float) -> None:
        """Wait for `count` more health cycles to finish, the table swap that follows each included."""
        target = self.cycles() + count
        deadline = time.monotonic() + timeout
        while self.cycles() < target:
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)

    def wait_counted(self, queries: int, timeout: float, what: str) -> None:
        """Wait until the status page counts at least `queries` queries (the answerers send their counts
        up to the supervisor every second); `what` says whose counts failed to arrive."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.status_url}/status.json", timeout=5).json()["queries"]["total"] < queries:
            assert time.monotonic() < deadline, f"{what} never reached the supervisor"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(config: Path, log_path: Path, ipv6: bool = True, extra: tuple[str, ...] = (),
                 wildcard: bool = False, port: int = 0) -> Server:
    """`wildcard`: listen on 0.0.0.0 and [::] (each on a port of its own) instead of 127.0.0.1 and [::1].
    `port`: the IPv4 port (0: one the kernel picks)."""
    v4, v6 = ("0.0.0.0", "[::]") if wildcard else ("127.0.0.1", "[::1]")
    listen = ["--listen", f"{v4}:{port}"] + (["--listen", f"{v6}:0"] if ipv6 else []) + ["--status", "127.0.0.1:0"]
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dnsbalance", "serve", "--config", str(config), *listen, *extra],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    server = Server(process, 0, None, log_path)
    try:
        server.port = int(server.wait_for_log(rf"on {re.escape(v4)}:(\d+) \(udp, tcp\)").group(1))
        if ipv6:
            server.port6 = int(server.wait_for_log(rf"on {re.escape(v6)}:(\d+) \(udp, tcp\)").group(1))
        server.status_port = int(server.wait_for_log(r"/metrics on http://127\.0\.0\.1:(\d+)/").group(1))
    except AssertionError:
        server.stop()
        raise
    return server


def recv_exact(sock: "socket.socket", size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def recv_frame(sock: "socket.socket") -> bytes:
    """One length-prefixed DNS message from a TCP connection."""
    return recv_exact(sock, int.from_bytes(recv_exact(sock, 2), "big"))


# Helpers several test files share (no test file imports another).

def answer_set(server: Server, rounds: int = 200) -> set[str]:  # jp4 is in ~1 answer in 8
    found: set[str] = set()
    for _ in range(rounds):
        reply = server.query("deb.cdn.example.org", subnet="1.0.16.0/24")
        found |= {rr.address for rrset in reply.answer for rr in rrset}
    return found


def reload_and_wait(server: Server, marker: str, count: int) -> None:
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while server.log().count(marker) < count:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def probe_everything(config_dir: Path, fleet: dict[str, "Mirror"], rise: int = 1) -> None:
    text = (config_dir / "mirrors.yaml").read_text()
    for name, mirror in fleet.items():
        text = re.sub(rf"^  {name}: {{addresses: (\[.*?\])}}$", rf"  {name}: {{addresses: \1, url: '{mirror.url}'}}",
                      text, flags=re.MULTILINE)
    (config_dir / "mirrors.yaml").write_text(text)
    with (config_dir / "dnsbalance.yaml").open("a") as handle:
        # the fixture's mirrors keep their documentation addresses (192.0.2.x), which the answers are checked
        # against: addresses: false, so only each URL (a test server on 127.0.0.1) is probed; vhost: false, as a
        # served probe of the URL would repeat the stamp probe; traces: false, as these mirrors publish no ftpsync
        # _hierarchy (each cycle reads the stamp and the lock, as the tests count). What apt gets and what ftpsync
        # publishes have their own tests (test_served, test_no_route, test_probe, test_partial_mirrors, test_push,
        # test_ftpsync); these are about each mirror's own verdict
        handle.write(f"health: {{interval: 1, timeout: 0.5, rise: {rise}, master: '{fleet['master'].url}', "
                     "addresses: false, vhost: false, traces: false}\n")


def wait_cycles(server: Server, count: int) -> None:
    server.wait_cycles(count, timeout=10 + 2 * count)


def processes_of(server: Server) -> set[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return {int(pid) for pid in children.read_text().split()} if children.exists() else set()


def settled(server: Server, workers: int = 2) -> None:
    """Past the first health cycle, whose table replaces the start-up answerers with a new generation, and
    the old generation gone."""
    server.wait_for_log(r"table generation 2 in service")
    deadline = time.monotonic() + 10
    while len(processes_of(server)) != workers:
        assert time.monotonic() < deadline, f"{len(processes_of(server))} answering processes, not {workers}"
        time.sleep(0.05)


ASN_NETWORKS = {
    "1.0.16.0/20": 64501,  # JP in the country database; no AS table
    "5.0.0.0/16": 64500,  # KR in the country database; the AS table asn/AS64500.yaml
    "127.0.0.5/32": 64500,  # a loopback source the AS table serves without ECS
    "2a00:1000::/32": 64500,  # DE in the country database
}


def write_asn_mmdb(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN",
                        description={"en": "dnsbalance test ASN database"})
    for network, number in ASN_NETWORKS.items():
        writer.insert_network(IPSet([network]), {"autonomous_system_number": number,
                                                 "autonomous_system_organization": f"Test AS{number}"})
    writer.to_db_file(str(path))
    return path


def fixture_table(folder: Path, country_mmdb: Path) -> "ActiveTable":
    """The fixture zone's table, every entry usable, built in process (generation, serial and seed 1)."""
    from dnsbalance.configuration.load import check_config
    from dnsbalance.ranking.build import build_table
    from dnsbalance.health.view import ALL_USABLE

    config, problems = check_config(make_config(folder, country_mmdb))
    assert config is not None, [str(p) for p in problems]
    return build_table(config, ALL_USABLE, generation=1, serial=1, seed=1)


def until(check: object, timeout: float, what: str) -> float:
    """Seconds until `check()` is true; fails with `what` after `timeout`."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, what
        time.sleep(0.05)
    return time.monotonic() - started
