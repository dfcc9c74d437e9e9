"""A real etcd v3 cluster on loopback (Debian's etcd-server), for the tests of several name servers.

Each member gets its own client and peer port (free ports, probed) and data folder; heartbeat and election
timeouts are etcd's defaults (100 ms, 1 s): shorter ones made a loaded machine elect leaders for nothing, and a
test still sees a new leader within a few seconds. Members can be stopped, killed and started
again with their data, as a failing host would.

With `tls`, clients must come over HTTPS with a client certificate the test's own CA signed (`certificates`
makes them with `cryptography`); `etcdctl` (Debian's etcd-client) sets up users, roles and authentication.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ETCD = "etcd"
ETCDCTL = "etcdctl"


def have_etcd() -> bool:
    return shutil.which(ETCD) is not None


def have_etcdctl() -> bool:
    return shutil.which(ETCDCTL) is not None


@dataclass(frozen=True)
class Certificates:
    """A CA, etcd's server certificate (for 127.0.0.1) and a client certificate, as PEM files."""

    ca: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path


def certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return folder / f"{name}.pem", folder / f"{name}-key.pem"

    def issue(name: str, usage: list[x509.ObjectIdentifier], issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
              ) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(issuer[0].subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                            x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
                .sign(issuer[1], hashes.SHA256()))
        return write(name, cert, key)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dnsbalance test etcd CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca, _ = write("ca", ca_cert, ca_key)
    # etcd's JSON gateway dials etcd's own gRPC port with the server certificate: it must be a client's too
    server = issue("etcd", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], (ca_cert, ca_key))
    client = issue("dnsbalance", [ExtendedKeyUsageOID.CLIENT_AUTH], (ca_cert, ca_key))
    return Certificates(ca, *server, *client)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket held open until all are bound (one bound and closed at a time,
    the kernel once handed out the same port twice and etcd refused a "duplicate url")."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data: Path
    log: Path
    process: subprocess.Popen | None = None
    scheme: str = "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    folder: Path
    size: int = 3
    members: list[Member] = field(default_factory=list)
    tls: Certificates | None = None  # clients: HTTPS with a client certificate

    def __post_init__(self) -> None:
        ports = free_ports(2 * self.size)
        for index in range(self.size):
            name = f"etcd{index}"
            self.members.append(Member(name, ports[2 * index], ports[2 * index + 1], self.folder / name,
                                       self.folder / f"{name}.log", scheme="https" if self.tls else "http"))

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def _command(self, member: Member) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer}" for m in self.members)
        return [ETCD, "--name", member.name, "--data-dir", str(member.data),
                "--listen-client-urls", member.endpoint, "--advertise-client-urls", member.endpoint,
                "--listen-peer-urls", member.peer, "--initial-advertise-peer-urls", member.peer,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"dnsbalance-test-{self.folder.name}",
                "--heartbeat-interval", "100", "--election-timeout", "1000", "--log-level", "warn",
                *(["--cert-file", str(self.tls.server), "--key-file", str(self.tls.server_key),
                   "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"] if self.tls else [])]

    def _client(self) -> dict[str, object]:
        """httpx's arguments for a client of this cluster (its CA and client certificate, with TLS)."""
        if self.tls is None:
            return {}
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client), str(self.tls.client_key))
        return {"verify": context}

    def etcdctl(self, *args: str, user: str | None = None) -> str:
        """etcdctl against the first member; its output. `user`: NAME:PASSWORD once authentication is on."""
        tls = ["--cacert", str(self.tls.ca), "--cert", str(self.tls.client), "--key", str(self.tls.client_key)] \
            if self.tls else []
        done = subprocess.run([ETCDCTL, "--endpoints", self.members[0].endpoint, *tls,
                               *(["--user", user] if user else []), *args],
                              capture_output=True, text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
        assert done.returncode == 0, f"etcdctl {' '.join(args)}: {done.stderr[-1000:]}"
        return done.stdout

    def start(self, timeout: float = 20) -> "EtcdCluster":
        for member in self.members:
            self.start_member(member, wait=False)
        self.wait_healthy(timeout)
        return self

    def start_member(self, member: Member, wait: bool = True) -> None:
        assert member.process is None or member.process.poll() is not None, f"{member.name} is running"
        with member.log.open("ab") as log:
            member.process = subprocess.Popen(self._command(member), stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True)
        if wait:
            self.wait_healthy(20, [member])

    def wait_healthy(self, timeout: float, members: list[Member] | None = None) -> None:
        """Until every member (or the given ones) says it is healthy: a leader is elected and it has quorum."""
        deadline = time.monotonic() + timeout
        for member in members or self.members:
            while True:
                try:
                    reply = httpx.get(member.endpoint + "/health", timeout=1, **self._client())  # type: ignore
                    if reply.status_code == 200 and reply.json().get("health") == "true":
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                assert member.process is not None and member.process.poll() is None, member.log.read_text()[-2000:]
                assert time.monotonic() < deadline, f"{member.name} not healthy: " + member.log.read_text()[-2000:]
                time.sleep(0.1)

    def stop_member(self, member: Member, kill: bool = False) -> None:
        if member.process is None or member.process.poll() is not None:
            return
        if kill:
            member.process.kill()
        else:
            member.process.terminate()
        try:
            member.process.wait(10)
        except subprocess.TimeoutExpired:
            member.process.kill()
            member.process.wait()

    def stop(self) -> None:
        for member in self.members:
            self.stop_member(member)
