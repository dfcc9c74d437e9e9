"""A private network namespace (and mount namespace) for tests that need fixed ports and a resolver of their own.

One holder process (`unshare --net --mount`) keeps the namespaces alive; every process of the test joins them
through `nsenter` on the holder's pid. Inside: only `lo`, up, so 127.0.0.0/8 is all there is (port 53 and 80 are
free, nothing leaves the machine), and /etc/resolv.conf is a file of the test's, bind-mounted in the private mount
namespace (the host's is untouched). Nothing is named or left in /run/netns or /etc/netns: the namespaces end
with their last process. Every process started here gets SIGKILL when the test process dies, so a crashed test
leaves nothing running.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1


def available() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"needs {tool}"
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces)"
    probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare --net --mount refused: {probe.stderr.strip()}"
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process goes (kept across exec; nsenter and unshare
    exec in place, so the server itself carries it)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Namespace:
    def __init__(self, resolv_conf: Path) -> None:
        # The line it prints says the namespaces exist: entering its pid any earlier would enter the host's.
        self.holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "--",
                                        "sh", "-c", "echo unshared && exec cat"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        self.processes: list[subprocess.Popen] = []
        try:
            assert self.holder.stdout is not None and self.holder.stdout.readline() == b"unshared\n", \
                "unshare --net --mount failed"
            for kind in ("net", "mnt"):
                assert os.readlink(f"/proc/{self.holder.pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
            self.run(["ip", "link", "set", "lo", "up"], check=True)
            self.run(["mount", "--bind", str(resolv_conf), "/etc/resolv.conf"], check=True)
        except BaseException:
            self.close()
            raise

    def enter(self, argv: list[str], cwd: Path | str | None = None) -> list[str]:
        """argv run in the namespaces, in cwd (entering a mount namespace moves a process to its root)."""
        return ["nsenter", "-t", str(self.holder.pid), "--net", "--mount", f"--wd={cwd or os.getcwd()}", "--", *argv]

    def popen(self, argv: list[str], log: IO[bytes] | int | None = None, cwd: Path | None = None,
              **kwargs: Any) -> subprocess.Popen:
        """A long-running process in the namespace, stopped by close() if the test has not."""
        process = subprocess.Popen(self.enter(argv, cwd), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, **kwargs)
        self.processes.append(process)
        return process

    def run(self, argv: list[str], timeout: float = 30, check: bool = False, cwd: Path | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess:
        """A command in the namespace, to completion; its output as text."""
        return subprocess.run(self.enter(argv, cwd), capture_output=True, text=True, timeout=timeout, check=check,
                              stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, **kwargs)

    @staticmethod
    def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        """Every process started here, then the holder: the namespaces go with the last of them."""
        for process in reversed(self.processes):
            self.stop(process)
        if self.holder.stdin is not None:
            self.holder.stdin.close()  # cat ends on end of input
        self.stop(self.holder)
