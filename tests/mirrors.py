"""Real HTTP mirrors on 127.0.0.1 for health tests: each can be fresh, stale, slow, dead or hostile."""
from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STAMP_PATH = "/debian/project/trace/ftp-master.debian.org"
BASE = datetime(2026, 11, 21, 12, 0, 1, tzinfo=timezone.utc)


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


class Mirror:
    """behaviour: fresh | stale | ahead | error500 | slow | huge | drip | redirect | empty"""

    def __init__(self, archive: Archive, behaviour: str = "fresh", slow_seconds: float = 3.0) -> None:
        self.archive = archive
        self.behaviour = behaviour
        self.slow_seconds = slow_seconds
        self.requests = 0
        self.closing = threading.Event()
        self.httpd: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/debian/"

    def start(self) -> None:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                mirror.requests += 1
                try:
                    mirror.respond(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the prober hung up, as it should on hostile responses

        ThreadingHTTPServer.allow_reuse_address = True
        self.closing.clear()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
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
        if handler.path != STAMP_PATH:
            handler.send_error(404)
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
