"""rsync:// stamp URLs, read with the rsync client from a real rsync daemon on 127.0.0.1."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from dnsbalance.health.fetch import fetch_rsync
from dnsbalance.health.stamp import parse_stamp
from tests.mirrors import Archive


@pytest.fixture
def rsync_daemon(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    root = tmp_path / "debian" / "project" / "trace"
    root.mkdir(parents=True)
    (root / "ftp-master.debian.org").write_bytes(Archive().stamp())
    (root / "big").write_bytes(b"x" * 200_000)
    conf = tmp_path / "rsyncd.conf"
    conf.write_text(f"use chroot = no\naddress = 127.0.0.1\npid file = {tmp_path}/rsyncd.pid\n"
                    f"[debian]\npath = {tmp_path / 'debian'}\nread only = yes\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    daemon = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--port={port}", f"--config={conf}"])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "rsync daemon did not start"
            time.sleep(0.05)
    yield port, tmp_path
    daemon.terminate()
    daemon.wait()


def test_rsync_stamp_is_read(rsync_daemon: tuple[int, Path]) -> None:
    port, _ = rsync_daemon
    fetched = asyncio.run(fetch_rsync(f"rsync://127.0.0.1:{port}/debian/project/trace/ftp-master.debian.org", 5))
    assert fetched.ok, fetched.error
    assert parse_stamp(fetched.body).serial == "2026112101"


def test_rsync_missing_file_and_oversized_file_fail(rsync_daemon: tuple[int, Path]) -> None:
    port, _ = rsync_daemon
    missing = asyncio.run(fetch_rsync(f"rsync://127.0.0.1:{port}/debian/project/trace/nothing", 5))
    assert not missing.ok and missing.error.startswith("rsync exit")
    big = asyncio.run(fetch_rsync(f"rsync://127.0.0.1:{port}/debian/project/trace/big", 5))
    assert not big.ok and "larger than" in big.error


def test_rsync_dead_port_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fetched = asyncio.run(fetch_rsync(f"rsync://127.0.0.1:{port}/debian/x", 2))
    assert not fetched.ok and fetched.latency < 2.5
