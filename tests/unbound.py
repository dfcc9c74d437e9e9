"""A real unbound on loopback in front of a dnsbalance server, and clients behind it on distinct /24s.

Unbound's subnetcache module sends each client's /24 as EDNS Client Subnet, so clients 127.A.B.7 on
distinct /24s are distinct cache entries and each gets its own answer from dnsbalance, as distinct
networks behind one ISP resolver would. Everything stays on 127.0.0.0/8: unbound sends only from
127.0.0.1 and knows no zone but the stub.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from tests.harness import NETWORKS

ZONE = "cdn.example.org"


def client_addresses(count: int) -> list[str]:
    """127.A.B.7 on `count` distinct /24s, skipping 127.0.0.0/16 (the harness's own 127.0.0.x)."""
    return [f"127.{1 + i // 256}.{i % 256}.7" for i in range(count)]


def write_client_mmdb(path: Path, clients: list[str], country: str = "JP", continent: str = "AS") -> Path:
    """The test networks, plus every client's /24 as its own network (a distinct record each, so the writer
    cannot merge neighbours into a wider prefix: the ECS scope dnsbalance returns is this prefix)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country",
                        description={"en": "dnsbalance resolver test database"})
    for network, (code, cont) in NETWORKS.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}, "continent": {"code": cont}})
    for client in clients:
        network = client.rsplit(".", 1)[0] + ".0/24"
        writer.insert_network(IPSet([network]), {"country": {"iso_code": country}, "continent": {"code": continent},
                                                 "network": network})
    writer.to_db_file(str(path))
    return path


# Extra names for the JP table (relative to the fixture zone): the examples, as priorities.
EXTRA_JP_NAMES = """
web:             # weights 60 / 25 / 10 / 5 (x100)
  jp1: 4000
  jp2: 7500
  jp3: 9000
  jp4: 9500
last:            # weights 9900 / 1000 / 100: a priority-9900 last resort
  jp1: 100
  jp2: 9000
  jp3: 9900
"""


def resolver_zone(target: Path, mmdb: Path, source: Path, answers: int = 4, min_answers: int = 1) -> Path:
    """The fixture zone with `answers` addresses per answer and the extra JP names."""
    shutil.copytree(source, target)
    shutil.copy(mmdb, target / "test.mmdb")
    settings = target / "dnsbalance.yaml"
    text = "\n".join(line for line in settings.read_text().splitlines() if not line.startswith("answers:"))
    minimum = f"min_answers: {min_answers}\n" if min_answers != 1 else ""  # the key is newer than answers
    settings.write_text(f"{text}\nanswers: {answers}\n{minimum}")
    with (target / "country" / "JP.yaml").open("a") as table:
        table.write(EXTRA_JP_NAMES)
    return target


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now (port 0 probing)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


@dataclass
class Unbound:
    process: subprocess.Popen
    port: int
    folder: Path

    def log(self) -> str:
        return (self.folder / "unbound.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def unbound_config(folder: Path, port: int, upstream: int | Sequence[int], roundrobin: bool,
                   trust_anchor: str | None = None) -> str:
    """`trust_anchor`: a DS line for the zone; unbound then validates (validator module, AD on secure answers).
    `upstream`: the server's port, or several servers' (each a stub-addr, as the zone's name servers)."""
    stubs = "\n".join(f"    stub-addr: 127.0.0.1@{each}" for each in ((upstream,) if isinstance(upstream, int)
                                                                   else upstream))
    modules = "subnetcache validator iterator" if trust_anchor else "subnetcache iterator"
    anchor = f'    trust-anchor: "{trust_anchor}"\n    val-log-level: 2\n' if trust_anchor else ""
    return f"""server:
    interface: 127.0.0.1@{port}
    port: {port}
    chroot: ""
    username: ""
    directory: "{folder}"
    pidfile: ""
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    do-ip6: no
    outgoing-interface: 127.0.0.1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    qname-minimisation: no
    target-fetch-policy: "0 0 0 0 0"
    prefetch: no
    module-config: "{modules}"
{anchor}    send-client-subnet: 127.0.0.1
    max-client-subnet-ipv4: 24
    rrset-roundrobin: {"yes" if roundrobin else "no"}
    msg-cache-size: 32m
    rrset-cache-size: 32m

stub-zone:
    name: "{ZONE}"
{stubs}
"""


def start_unbound(folder: Path, upstream: int | Sequence[int], roundrobin: bool = True,
                  trust_anchor: str | None = None) -> Unbound:
    """Unbound in the foreground (-d) on a free loopback port, forwarding the zone to 127.0.0.1@upstream."""
    binary = shutil.which("unbound") or "/usr/sbin/unbound"
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = free_port()
        config = folder / "unbound.conf"
        config.write_text(unbound_config(folder, port, upstream, roundrobin, trust_anchor))
        log = (folder / "unbound.log").open("wb")
        process = subprocess.Popen([binary, "-d", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
        server = Unbound(process, port, folder)
        if _ready(server):
            return server
        server.stop()
        if "bind" not in server.log() and "could not open" not in server.log():
            break  # not a port race: a real failure
    raise AssertionError(f"unbound did not start:\n{server.log()}")


def _ready(server: Unbound, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    query = dns.message.make_query(f"ready.{ZONE}", "TXT")  # NXDOMAIN from dnsbalance: both are up
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
                sock.recv(4096)
                return True
            except OSError:
                time.sleep(0.1)
    return False


@dataclass
class Observed:
    firsts: Counter  # address -> clients whose first address it was
    sizes: Counter  # addresses per answer -> answers
    addresses: set[str]


def ask_through(resolver_port: int, clients: list[str], name: str, rdtype: str = "A") -> Observed:
    """One query per client, each from its own source address; what each client gets first."""
    observed = Observed(Counter(), Counter(), set())
    for ident, client in enumerate(clients):
        query = dns.message.make_query(f"{name}.{ZONE}", rdtype, id=ident & 0xFFFF)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((client, 0))
            sock.settimeout(5)
            sock.sendto(query.to_wire(), ("127.0.0.1", resolver_port))
            reply = dns.message.from_wire(sock.recv(65535))
        addresses = [rr.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                     for rr in rrset]
        assert addresses, f"{client}: empty answer {reply}"
        observed.firsts[addresses[0]] += 1
        observed.sizes[len(addresses)] += 1
        observed.addresses.update(addresses)
    return observed


SIGNED_CLIENT = "127.1.0.7"  # a JP client of the signed zone's GeoIP database (tests/signed_zone.py REGIONS)


def through(resolver: Unbound, name: str, rdtype: str, client: str = SIGNED_CLIENT) -> dns.message.Message:
    """The resolver's reply to a DO query sent from `client`."""
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((client, 0))
        sock.settimeout(10)
        sock.sendto(query.to_wire(), ("127.0.0.1", resolver.port))
        return dns.message.from_wire(sock.recv(65535))


def secure(resolver: Unbound, name: str, rdtype: str, client: str = SIGNED_CLIENT,
           rcode: int = dns.rcode.NOERROR) -> dns.message.Message:
    """through(), asserting the rcode and that the validating resolver marked it AD (secure)."""
    reply = through(resolver, name, rdtype, client)
    assert reply.rcode() == rcode, (name, rdtype, reply, resolver.log()[-3000:])
    assert reply.flags & dns.flags.AD, (name, rdtype, reply, resolver.log()[-3000:])
    return reply
