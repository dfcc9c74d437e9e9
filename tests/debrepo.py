"""A minimal Debian repository, and a mirror process that serves it over HTTP with an access log.

The repository is what `apt-get update` needs for a `[trusted=yes]` source and no more: `dists/SUITE/Release`
(no InRelease, no signature: apt asks for both, gets 404 and goes on because the source is trusted) and one
`Packages` file it lists, plus ftpsync's stamp for dnsbalance's prober. The mirror is a process of its own
(`python -m tests.debrepo`), so that it can run inside a network namespace, be killed like a real server, and
be read from outside through its access log: one tab-separated line per request, written before the reply.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SUITE = "stable"
COMPONENT = "main"
ARCHITECTURE = "amd64"
STAMP = "project/trace/ftp-master.debian.org"
PACKAGES = """Package: dnsbalance-probe
Version: 1.0
Architecture: all
Maintainer: dnsbalance tests <tests@example.org>
Installed-Size: 1
Filename: pool/main/d/dnsbalance-probe/dnsbalance-probe_1.0_all.deb
Size: 1
SHA256: 6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d
Section: misc
Priority: optional
Description: a package that exists only in the index apt fetches
"""


def write_repository(root: Path, archive: str = "debian") -> Path:
    """The repository under root/archive (served as /archive/); returns that folder."""
    base = root / archive
    index = base / "dists" / SUITE / COMPONENT / f"binary-{ARCHITECTURE}" / "Packages"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(PACKAGES)
    data = index.read_bytes()
    relative = f"{COMPONENT}/binary-{ARCHITECTURE}/Packages"
    now = datetime.now(UTC).replace(microsecond=0)
    (base / "dists" / SUITE / "Release").write_text(
        f"Origin: dnsbalance-test\nLabel: dnsbalance-test\nSuite: {SUITE}\nCodename: {SUITE}\n"
        f"Date: {format_datetime(now, usegmt=True)}\nArchitectures: {ARCHITECTURE}\nComponents: {COMPONENT}\n"
        f"Description: the apt path test's repository\n"
        f"SHA256:\n {hashlib.sha256(data).hexdigest()} {len(data)} {relative}\n")
    stamp = base / STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(f"{now.strftime('%a %b %e %H:%M:%S UTC %Y')}\nArchive serial: 2026120301\n")
    return base


@dataclass(frozen=True)
class Request:
    client: str
    host: str
    path: str
    status: int


def read_log(path: Path) -> list[Request]:
    """The requests a mirror logged so far (a line still being written is left for the next read)."""
    if not path.exists():
        return []
    requests = []
    for line in path.read_text(errors="replace").splitlines(keepends=True):
        fields = line.rstrip("\n").split("\t")
        if line.endswith("\n") and len(fields) == 4:
            requests.append(Request(fields[0], fields[1], fields[2], int(fields[3])))
    return requests


def serve(address: str, port: int, root: Path, log: Path) -> None:
    """Serve files under root at address:port until killed, HTTP/1.1 with keep-alive as real mirrors do."""
    journal = log.open("a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass  # the access log below is the record

        def _file(self) -> Path | None:
            path = self.path.split("?", 1)[0]
            target = (root / path.lstrip("/")).resolve()
            if root.resolve() not in target.parents or not target.is_file():
                return None
            return target

        def _reply(self, body: bool) -> None:
            target = self._file()
            status = 200 if target is not None else 404
            journal.write(f"{self.client_address[0]}\t{self.headers.get('Host', '')}\t{self.path}\t{status}\n")
            data = target.read_bytes() if target is not None else b"not here\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream" if target else "text/plain")
            if target is not None:
                self.send_header("Last-Modified", self.date_time_string(int(target.stat().st_mtime)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(body=True)

        def do_HEAD(self) -> None:
            self._reply(body=False)

    class Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    with Server((address, port), Handler) as server:
        print(f"serving on {address}:{port}", flush=True)
        server.serve_forever()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    os.umask(0o022)
    serve(args.address, args.port, args.root, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
