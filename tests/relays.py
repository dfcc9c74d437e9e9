"""Real relays for tests: coturn's turnserver on loopback ports, and broken UDP responders."""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from dnsbalance.health.stun import BINDING_SUCCESS, MAGIC_COOKIE, XOR_MAPPED_ADDRESS


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "relay.crt", folder / "relay.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=relay.test"],
                   check=True, capture_output=True)
    return cert, key


class Coturn:
    """turnserver on 127.0.0.1: STUN/TURN on `port` (UDP and TCP), TURN over TLS on `tls_port`."""

    def __init__(self, folder: Path) -> None:
        assert shutil.which("turnserver"), "coturn missing: .ci/run installs it"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.cert, self.key = self_signed(folder)
        self.port, self.tls_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        relay_base = 50000 + (os.getpid() * 7 + self.port) % 10000
        self.process = subprocess.Popen(
            ["turnserver", "-n", "--no-cli", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             f"--listening-port={self.port}", f"--tls-listening-port={self.tls_port}",
             f"--cert={self.cert}", f"--pkey={self.key}", "--no-dtls", "--realm=test.invalid",
             f"--min-port={relay_base}", f"--max-port={relay_base + 50}", "--log-file=stdout", "--simple-log",
             f"--pidfile={self.folder / 'turnserver.pid'}", "--lt-cred-mech", "--user=test:test"],
            stdout=(self.folder / "turnserver.log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.process.poll() is None, (self.folder / "turnserver.log").read_text()
                assert time.monotonic() < deadline, "turnserver did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class UdpResponder:
    """A UDP port that answers every datagram badly: `garbage`, or a Binding success with a wrong id."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            if self.mode == "garbage":
                reply = b"\x17\x03\x03 this is not STUN at all"
            else:
                wrong = bytes(b ^ 0xFF for b in data[8:20])
                attr = struct.pack("!HHBBH4s", XOR_MAPPED_ADDRESS, 8, 0, 1, peer[1] ^ (MAGIC_COOKIE >> 16),
                                   (int.from_bytes(socket.inet_aton(peer[0]), "big") ^ MAGIC_COOKIE).to_bytes(4, "big"))
                reply = struct.pack("!HHI12s", BINDING_SUCCESS, len(attr), MAGIC_COOKIE, wrong) + attr
            self.sock.sendto(reply, peer)

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()
