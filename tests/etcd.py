"""A real etcd v3 cluster on loopback (Debian's etcd-server), for the tests of several name servers.

Each member gets its own client and peer port (free ports, probed) and data folder; heartbeat and election
timeouts are etcd's defaults (100 ms, 1 s): shorter ones made a loaded machine elect leaders for nothing, and a
test still sees a new leader within a few seconds. Members can be stopped, killed and started
again with their data, as a failing host would.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ETCD = "etcd"


def have_etcd() -> bool:
    return shutil.which(ETCD) is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data: Path
    log: Path
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    folder: Path
    size: int = 3
    members: list[Member] = field(default_factory=list)

    def __post_init__(self) -> None:
        for index in range(self.size):
            name = f"etcd{index}"
            self.members.append(Member(name, free_port(), free_port(), self.folder / name,
                                       self.folder / f"{name}.log"))

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
                "--heartbeat-interval", "100", "--election-timeout", "1000", "--log-level", "warn"]

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
                    reply = httpx.get(member.endpoint + "/health", timeout=1)
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
