"""Real HTTP mirrors on 127.0.0.1 for health tests: each can be fresh, stale, slow, dead or hostile."""
from __future__ import annotations

import functools
import gzip
import socket
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STAMP = "project/trace/ftp-master.debian.org"
STAMP_PATH = "/debian/" + STAMP
SOFT_404 = b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body>Mirror home</body></html>\n"
BASE = datetime(2026, 11, 21, 12, 0, 1, tzinfo=UTC)
BOMB_BYTES = 128 << 20  # what a gzip bomb inflates to; it is sent as about 130 KB


@functools.cache
def gzip_bomb(head: bytes) -> bytes:
    """`head` then BOMB_BYTES of zeros, gzip-encoded (made once per head: about half a second)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([packer.compress(head), *(packer.compress(zeros) for _ in range(BOMB_BYTES >> 20)),
                     packer.flush()])


def trace(serial: int, date: datetime) -> bytes:
    """A trace file as ftpsync writes it: `date -u`, then key: value lines."""
    return (f"{date.strftime('%a %b %e %H:%M:%S UTC %Y')}\n"
            f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}\n"
            f"Archive serial: {serial}\nCreator: ftpsync 20240101\nRunning on host: test\n").encode()


class Archive:
    """The upstream: the master's current serial and date, shared by every mirror."""

    def __init__(self) -> None:
        self.serial = 2026112101
        self.date = BASE

    def stamp(self, behind: int = 0) -> bytes:
        return trace(self.serial - behind, self.date - timedelta(hours=6 * behind))

    def publish(self, serial: int | None = None) -> int:
        """A master push: the next serial (or `serial`), dated now."""
        self.serial = serial if serial is not None else self.serial + 1
        self.date = datetime.now(UTC).replace(microsecond=0)
        return self.serial


class Mirror:
    """behaviour: fresh | stale | ahead | error500 | slow | huge | drip | redirect | empty | html (a soft-404 site:
    200 and a home page for every path) | gzip (a fresh stamp sent gzip-encoded whatever was asked) | gzip-bomb (a
    fresh stamp and 128 MiB of zeros, gzip-encoded, about 130 KB on the wire) | endless (a fresh stamp, then a
    chunked body that never ends).
    `serial`: serve this serial (dated by how far it is behind the archive's) instead of following the archive;
    `locked`: serve ftpsync's Archive-Update-in-Progress-127.0.0.1 at the archive root."""

    def __init__(self, archive: Archive, behaviour: str = "fresh", slow_seconds: float = 3.0,
                 prefix: str = "/debian/", stamp: str = STAMP, address: str = "127.0.0.1") -> None:
        self.archive = archive
        self.address = address  # a loopback address it listens on (and its URL's host)
        self.behaviour = behaviour
        self.slow_seconds = slow_seconds
        self.prefix = prefix
        self.stamp_path = prefix + stamp
        self.serial: int | None = None
        self.locked = False
        self.refused: set[str] = set()  # source addresses whose connections are closed unanswered
        self.requests = 0
        self.closing = threading.Event()
        self.httpd: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}{self.prefix}"

    def start(self) -> None:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                mirror.requests += 1
                try:
                    mirror.respond(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the prober hung up, as it should on hostile responses

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True

            def verify_request(self, request: object, client_address: tuple[str, int]) -> bool:  # type: ignore[override]
                return client_address[0] not in mirror.refused  # a network that cannot reach the mirror

        ThreadingHTTPServer.allow_reuse_address = True  # as before, for every server of this file
        self.closing.clear()
        self.httpd = Server((self.address, self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """Close the listening socket: connections are refused until start()."""
        self.closing.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        b = self.behaviour
        if b == "html":
            self._send(handler, SOFT_404, "text/html")
            return
        if handler.path == self.prefix + "Archive-Update-in-Progress-127.0.0.1" and self.locked:
            self._send(handler, b"4242\n")
            return
        if handler.path != self.stamp_path:
            handler.send_error(404)
            return
        if b == "gzip":
            self._send(handler, gzip.compress(self.archive.stamp()), encoding="gzip")
            return
        if b == "gzip-bomb":
            self._send(handler, gzip_bomb(self.archive.stamp()), encoding="gzip")
            return
        if b == "endless":
            self._endless(handler, self.archive.stamp())
            return
        if self.serial is not None:
            self._send(handler, trace(self.serial, self.archive.date - timedelta(minutes=self.archive.serial -
                                                                                  self.serial)))
            return
        if b == "error500":
            handler.send_error(500)
            return
        if b == "redirect":
            handler.send_response(302)
            handler.send_header("Location", handler.path)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if b == "slow":
            self.closing.wait(self.slow_seconds)
        if b == "huge":
            handler.send_response(200)
            handler.send_header("Content-Length", str(10 * 1024 * 1024))
            handler.end_headers()
            handler.wfile.write(self.archive.stamp())
            chunk = b"x" * 65536
            for _ in range(160):
                handler.wfile.write(chunk)
            return
        if b == "drip":
            handler.send_response(200)
            handler.send_header("Content-Length", "1000")
            handler.end_headers()
            for _ in range(1000):
                if self.closing.wait(1.0):
                    return
                handler.wfile.write(b"x")
                handler.wfile.flush()
            return
        body = {"fresh": self.archive.stamp(), "stale": self.archive.stamp(behind=1),
                "ahead": self.archive.stamp(behind=-1), "slow": self.archive.stamp(), "empty": b""}[b]
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


    def _endless(self, handler: BaseHTTPRequestHandler, head: bytes) -> None:
        """HTTP/1.1 chunked: `head`, then 64 KiB chunks until the prober hangs up (or 4 GiB, or stop())."""
        handler.protocol_version = "HTTP/1.1"
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        for _ in range(65536):
            if self.closing.is_set():
                return
            handler.wfile.write(chunk)

    def _send(self, handler: BaseHTTPRequestHandler, body: bytes, content_type: str = "text/plain",
              encoding: str | None = None) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Last-Modified", "Sat, 21 Nov 2026 12:00:01 GMT")
        if encoding:
            handler.send_header("Content-Encoding", encoding)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def refused_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/debian/"


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


class Site:
    """A mirror host serving whatever files it is given, by path (several archives on one host, traces that
    change on a schedule, ftpsync's lock). Absent paths are 404."""

    def __init__(self, files: dict[str, bytes] | None = None, root: Path | None = None,
                 address: str = "127.0.0.1") -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.address = address  # a loopback address it listens on (and its URL's host)
        self.root = root  # also serve this folder's files (an ftpsync target), under /
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = site.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def get(self, path: str) -> bytes | None:
        if path in self.files:
            return self.files[path]
        if self.root is not None and ".." not in path.split("/"):
            try:
                return (self.root / path.lstrip("/")).read_bytes()
            except OSError:
                return None
        return None

    def url(self, prefix: str = "/debian/") -> str:
        return f"http://{self.address}:{self.port}{prefix}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def probe_at(folder: Path, fleet: dict[str, Mirror]) -> None:
    """Give each mirror of the fixture's mirrors.yaml named in `fleet` the URL of its real HTTP server."""
    text = (folder / "mirrors.yaml").read_text()
    for name, mirror in fleet.items():
        text = text.replace(f"  {name}: {{addresses: [", f"  {name}: {{url: '{mirror.url}', addresses: [")
    (folder / "mirrors.yaml").write_text(text)
