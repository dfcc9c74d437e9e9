"""Mirrors as apt reaches them, for the served-health tests: one mirror listening on several loopback addresses
(127.0.0.x and ::1) on one port, serving the stamp only under the virtual host names it is configured for, over
http or https (certificates made here with the openssl command, by a CA of the test's own)."""
from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.mirrors import STAMP_PATH, Archive


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder: Path) -> Certificate:
    folder.mkdir(parents=True, exist_ok=True)
    ca = Certificate(folder / "ca.pem", folder / "ca.key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(ca.key), "-out", str(ca.cert), "-days", "30", "-subj", "/CN=dnsbalance test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca


def issue(ca: Certificate, folder: Path, name: str, days: int = 30, address: str | None = None) -> Certificate:
    """A server certificate for `name` (and `address`), valid `days` days from now, signed by `ca`."""
    made = Certificate(folder / f"{name}-{days}.pem", folder / f"{name}-{days}.key")
    csr = folder / f"{name}-{days}.csr"
    ext = folder / f"{name}-{days}.ext"
    ext.write_text(f"subjectAltName=DNS:{name}{f',IP:{address}' if address else ''}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid,issuer\n"
                   "subjectKeyIdentifier=hash\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             str(made.key), "-out", str(csr), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
             "-out", str(made.cert), "-days", str(days), "-extfile", str(ext))
    return made


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class HostMirror:
    """A fresh mirror of `archive` at every address of `addresses` (one port for all), answering the stamp only
    for a Host in `hosts` (None: any) and 404 otherwise; over TLS with `certificate` when given. `seen` holds
    (address, Host) of every request."""

    def __init__(self, archive: Archive, addresses: list[str], hosts: set[str] | None = None,
                 certificate: Certificate | None = None) -> None:
        self.archive = archive
        self.hosts = hosts
        self.seen: list[tuple[str, str]] = []
        self.servers: list[ThreadingHTTPServer] = []
        self.port = 0
        context = None
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate.cert, certificate.key)
        for address in addresses:
            self._listen(address, context)

    @property
    def scheme(self) -> str:
        return "https" if self.servers and isinstance(self.servers[0].socket, ssl.SSLSocket) else "http"

    def url(self, host: str) -> str:
        return f"{self.scheme}://{host}:{self.port}/debian/"

    def _listen(self, address: str, context: ssl.SSLContext | None) -> None:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                said = self.headers.get("Host") or ""
                host = said.split("]")[0] + "]" if said.startswith("[") else said.split(":")[0]
                mirror.seen.append((address, host))
                if self.path != STAMP_PATH or (mirror.hosts is not None and host not in mirror.hosts):
                    self.send_error(404)
                    return
                body = mirror.archive.stamp()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        kind = _Server6 if ":" in address else ThreadingHTTPServer
        kind.allow_reuse_address = True
        server = kind((address, self.port), Handler)
        server.daemon_threads = True
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self.servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers = []


def dead_port(address: str, port: int) -> bool:
    """Nothing listens at (address, port): what a test asserts before counting on a dead address."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex((address, port)) != 0
