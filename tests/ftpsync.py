"""Debian's real ftpsync on loopback: a local master archive served by an rsync daemon on a free port, and
mirrors that ftpsync syncs from it, each held between its two stages by a gate file the test opens."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

STAMP = "project/trace/ftp-master.debian.org"


class Stoppable(Protocol):
    def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def master_trace(serial: int, date: datetime) -> str:
    """What dak writes at the top of the master's trace file."""
    return (f"{date.strftime('%a %b %e %H:%M:%S UTC %Y')}\nDate: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}\n"
            f"Archive serial: {serial}\nCreator: dak\nRunning on host: ftp-master.test\n")


def publish(root: Path, serial: int) -> None:
    """A master push: new pool files, then new indices, then the trace, as dak does."""
    now = datetime.now(UTC).replace(microsecond=0)
    pool = root / "pool/main/h/hello"
    pool.mkdir(parents=True, exist_ok=True)
    (pool / f"hello_{serial}_amd64.deb").write_bytes(os.urandom(32 * 1024))
    packages = root / "dists/stable/main/binary-amd64"
    packages.mkdir(parents=True, exist_ok=True)
    (packages / "Packages").write_text(f"Package: hello\nVersion: {serial}\nFilename: pool/main/h/hello/"
                                       f"hello_{serial}_amd64.deb\n")
    (root / "dists/stable/Release").write_text(f"Origin: Debian\nSuite: stable\nDate: {now:%a, %d %b %Y %H:%M:%S} UTC\n")
    (root / "project/trace").mkdir(parents=True, exist_ok=True)
    (root / STAMP).write_text(master_trace(serial, now))


@dataclass
class RsyncDaemon:
    folder: Path
    process: subprocess.Popen | None = None
    port: int = 0

    def start(self, module_path: Path) -> None:
        config = self.folder / "rsyncd.conf"
        who = "uid = 0\ngid = 0\n" if os.geteuid() == 0 else ""
        config.write_text(f"use chroot = no\n{who}log file = {self.folder / 'rsyncd.log'}\n"
                          f"[debian]\npath = {module_path}\nread only = yes\n")
        for _ in range(5):  # a free port can be taken between the probe and the bind: try again
            self.port = free_port()
            self.process = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={config}",
                                             f"--port={self.port}", "--address=127.0.0.1"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise AssertionError("rsync daemon did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@dataclass
class FtpsyncMirror:
    """One mirror: ftpsync's configuration in its own HOME, the archive under `root`/debian."""

    name: str
    folder: Path
    source: str  # rsync://127.0.0.1:PORT/debian/
    mirrorname: str = "127.0.0.1"  # ftpsync's MIRRORNAME: names its lock and its own trace
    settings: str = ""  # more ftpsync.conf lines (ARCH_INCLUDE="amd64" for a partial mirror)
    runs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.folder / "site"

    @property
    def archive(self) -> Path:
        return self.root / "debian"

    @property
    def lock(self) -> Path:
        return self.archive / f"Archive-Update-in-Progress-{self.mirrorname}"

    @property
    def gate(self) -> Path:
        return self.folder / "stage2-may-run"

    def configure(self) -> None:
        home = self.folder / "home"
        (home / ".config/ftpsync").mkdir(parents=True, exist_ok=True)
        hook = self.folder / "wait-for-gate"
        hook.write_text(f"#!/bin/sh\nwhile [ ! -e '{self.gate}' ]; do sleep 0.05; done\n")
        hook.chmod(0o755)
        (home / f".config/ftpsync/ftpsync-{self.name}.conf").write_text(
            f'MIRRORNAME="{self.mirrorname}"\nTO="{self.archive}/"\nRSYNC_SOURCE="{self.source}"\n'
            f'MAILTO="nobody@localhost"\nERRORSONLY="true"\nHOOK2="{hook}"\nTRACEHOST="{self.name}.test"\n'
            + self.settings)

    def sync(self, hold: bool) -> subprocess.Popen:
        """Start `ftpsync sync:archive:NAME`; with `hold`, it stops after stage 1 (lock in place) until
        release()."""
        if hold:
            self.gate.unlink(missing_ok=True)
        else:
            self.gate.touch()
        home = self.folder / "home"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LOGNAME": "dnsbalance-test",
               "LANG": "C"}
        process = subprocess.Popen(["ftpsync", f"sync:archive:{self.name}"], env=env, cwd=self.folder,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.runs.append(process)
        return process

    def wait_locked(self, timeout: float = 30) -> None:
        """Until stage 1 is over and the lock is in place (the hook is waiting at the gate)."""
        deadline = time.monotonic() + timeout
        log = self.folder / "home/.local/log/ftpsync" / f"ftpsync-{self.name}.log"
        while not (self.lock.exists() and log.exists() and "Running hook 2" in log.read_text(errors="replace")):
            assert time.monotonic() < deadline, f"{self.name}: ftpsync did not reach stage 2"
            assert self.runs[-1].poll() is None, f"{self.name}: ftpsync exited {self.runs[-1].returncode}"
            time.sleep(0.05)

    def release(self, timeout: float = 60) -> None:
        self.gate.touch()
        code = self.runs[-1].wait(timeout=timeout)
        assert code == 0, f"{self.name}: ftpsync exited {code}; see {self.folder}/home/.local/log/ftpsync"

    def stop(self) -> None:
        self.gate.touch()
        for process in self.runs:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


def have_ftpsync() -> bool:
    return shutil.which("ftpsync") is not None and shutil.which("rsync") is not None


def sync_step(mirrors: dict[str, FtpsyncMirror], start: Iterable[str], finish: Iterable[str]) -> None:
    """One step of a push: the mirrors in `start` begin syncing (those not in `finish` held mid-sync, their
    lock up), the ones in `finish` complete theirs."""
    finish = set(finish)
    for name in start:
        mirrors[name].sync(hold=name not in finish)
        if name not in finish:
            mirrors[name].wait_locked()
    for name in finish:
        mirrors[name].release()


def stop_everything(mirrors: dict[str, FtpsyncMirror], sites: Mapping[str, Stoppable], daemon: RsyncDaemon) -> None:
    for mirror in mirrors.values():
        mirror.stop()
    for site in sites.values():
        site.stop()
    daemon.stop()
