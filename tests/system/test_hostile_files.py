"""Hostile configuration files (issue 14, items 1, 2, 8, 10, 11): each refused with its file and line, quickly
and in bounded memory, by `check`, by a running server on SIGHUP and at start-up; the server keeps answering."""
from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnsbalance.configuration.yamlpos import MAX_FILE_BYTES
from dnsbalance.geo.locate import BUILTIN_NAME
from tests.harness import ROOT, start_server

DEEP = "deb:\n  jp1: " + "[" * 30_000 + "]" * 30_000 + "\n"  # 60 KB, a list 30,000 deep
BOMB = "deb:\n  jp1: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(  # under 1 KB, 10^9 items expanded
    f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)) + "jp:\n  jp1: *a8\n"


def run_check(config: Path) -> tuple[int, str, float, int]:
    """`dnsbalance check`: exit code, output, seconds, peak RSS in MiB (from the kernel, for this child)."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "dnsbalance", "check", "--config", str(config)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, output, time.monotonic() - started, usage.ru_maxrss // 1024


@pytest.mark.parametrize("text, message", [
    (DEEP, r"country/JP\.yaml:2: nested more than 64 levels deep"),
    (BOMB, r"country/JP\.yaml:\d+: more than 1,000,000 values \(aliases counted expanded\)"),
])
def test_check_refuses_deep_and_exploding_files(config_dir: Path, text: str, message: str) -> None:
    assert len(text) < 70_000
    (config_dir / "country" / "JP.yaml").write_text(text)
    code, output, seconds, rss = run_check(config_dir)
    assert code == 1, output  # not 139 (segfault), not a traceback
    assert re.search(message, output), output
    assert "Traceback" not in output
    assert seconds < 20 and rss < 400, (seconds, rss)  # unbounded: a crash, or 2.8 GB and 40 s


def test_check_never_formats_an_expanded_value(config_dir: Path) -> None:
    """Under the node limit an alias still multiplies what a message could print: values are shown briefly."""
    (config_dir / "country" / "JP.yaml").write_text(
        "deb:\n  jp1: &a [" + ", ".join(["'" + "x" * 50 + "'"] * 100) + "]\n  jp2: [*a, *a, *a, *a, *a]\n")
    code, output, _, _ = run_check(config_dir)
    assert code == 1
    assert "priority of 'jp1' must be an integer 0..10000, got a list" in output, output
    assert len(output) < 2000, output


def test_check_refuses_an_oversized_file_with_a_message(config_dir: Path) -> None:
    with (config_dir / "country" / "JP.yaml").open("w") as handle:
        handle.write("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    code, output, seconds, _ = run_check(config_dir)
    assert code == 1 and f"country/JP.yaml:1: larger than {MAX_FILE_BYTES >> 20} MiB" in output, output
    assert seconds < 20


def test_names_missing_from_default_are_checked_in_linear_time(config_dir: Path) -> None:
    (config_dir / "country" / "KR.yaml").write_text("".join(f"n{i}:\n  kr1: 10\n" for i in range(5000)))
    code, output, seconds, _ = run_check(config_dir)
    assert code == 0 and output.count("not in default.yaml") == 5000
    assert seconds < 20, seconds  # quadratic: 2,000 names took over 60 s


def test_tables_that_would_not_be_read_are_errors(config_dir: Path) -> None:
    country = config_dir / "country"
    (country / "JP.yaml").rename(country / "JP.YAML")
    (country / "FR.yaml").mkdir()
    (country / "DE.yml").symlink_to(config_dir / "nowhere.yaml")
    code, output, _, _ = run_check(config_dir)
    assert code == 1
    assert "country/JP.YAML:1: not read: table files end in .yaml or .yml (lower case), not '.YAML'" in output
    assert "country/FR.yaml:1: not read: a directory" in output
    assert "country/DE.yml:1: not read: a dangling symbolic link" in output


def test_file_names_are_quoted_and_system_files_not_echoed(config_dir: Path, tmp_path: Path) -> None:
    (config_dir / "country" / "X\nfake.yaml:1: ok\x1b[31m.yaml").write_text("deb:\n  jp1: 1\n")
    system = tmp_path / "shadow"  # shaped like /etc/shadow, which a symlink may point at
    system.write_text("root:$6$secretsalt$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    (config_dir / "country" / "JP.yaml").unlink()
    (config_dir / "country" / "JP.yaml").symlink_to(system)
    code, output, _, _ = run_check(config_dir)
    assert code == 1
    assert "\x1b" not in output and "\nfake.yaml" not in output
    assert r"X\nfake.yaml:1: ok\x1b[31m.yaml'" in output, output
    assert "secretsalt" not in output and "daemon" not in output, output
    assert "country/JP.yaml:1: not a dnsbalance configuration file" in output


@pytest.mark.parametrize("text", [DEEP, BOMB])
def test_server_refuses_hostile_reload_and_keeps_answering(config_dir: Path, tmp_path: Path, text: str) -> None:
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        (config_dir / "country" / "JP.yaml").write_text(text)
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_log(r"reload refused: .*country/JP\.yaml:\d+: ", timeout=20)
        started = time.monotonic()
        reply = server.query("deb.cdn.example.org", tcp=True)
        assert reply.answer and time.monotonic() - started < 1
        assert server.process.poll() is None
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def test_server_refuses_to_start_on_a_deep_file(config_dir: Path, tmp_path: Path) -> None:
    (config_dir / "country" / "JP.yaml").write_text(DEEP)
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config_dir),
                             "--listen", "127.0.0.1:0"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode not in (0, -signal.SIGSEGV, 139)
    assert "country/JP.yaml:2: nested more than 64 levels deep" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# Issue 22 items 2 and 3: what is not a regular file, as every kind of configuration file. /dev/zero reads
# forever with a size of 0 (check grew to 3 GB), a FIFO blocks its reader until a writer comes (check hung; a
# reloading server wedged and ignored SIGTERM): each is refused with its file and line, unopened.
KINDS = {
    "dev-zero": "a character device",
    "fifo": r"a FIFO \(named pipe\)",
    "socket": "a socket",
    "directory": "a directory",
    "symlink-loop": "a symbolic link loop",
}
FILES = ["dnsbalance.yaml", "mirrors.yaml", "default.yaml", "country/JP.yaml", "network/lab.yaml"]
REFUSED_WITHIN = 1.0  # seconds, in a running server; a command adds its interpreter's start


def make_hostile(path: Path, kind: str) -> None:
    """Put a `kind` where `path` is (whatever was there is removed)."""
    path.parent.mkdir(exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(path))  # the socket file stays after the close
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(path.name)  # itself: ELOOP


def undo_hostile(path: Path, saved: bytes | None) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink()
    if saved is not None:
        path.write_bytes(saved)


def assert_unopened(path: Path, kind: str) -> None:
    """A FIFO nobody holds open for reading refuses a non-blocking writer (ENXIO): the server did not open it."""
    if kind == "fifo":
        with pytest.raises(OSError) as raised:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        assert raised.value.errno == errno.ENXIO


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def plain_rss(config_dir: Path) -> int:
    """The peak RSS a check of the good folder reports now: a child's counts what it was forked from (this
    test process, which grows over a run), so a bound is relative to it."""
    code, output, _, rss = run_check(config_dir)
    assert code == 0, output
    return rss


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", FILES)
def test_check_refuses_what_is_not_a_regular_file(config_dir: Path, name: str, kind: str, plain_rss: int) -> None:
    make_hostile(config_dir / name, kind)
    code, output, seconds, rss = run_check(config_dir)
    assert code == 1, output
    assert re.search(rf"{re.escape(name)}:1: not read: {KINDS[kind]}\n", output), output
    assert "Traceback" not in output
    assert seconds < 15, seconds  # was: a hang (a busy machine may make the start slow, not endless)
    assert rss < plain_rss + 100, (rss, plain_rss)  # was: 3 GB and a MemoryError
    assert_unopened(config_dir / name, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", FILES)
def test_serve_refuses_to_start_on_what_is_not_a_regular_file(config_dir: Path, name: str, kind: str) -> None:
    make_hostile(config_dir / name, kind)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config_dir),
                                "--listen", "127.0.0.1:0", "--status", "off"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 1, output
    assert re.search(rf"{re.escape(name)}:1: not read: {KINDS[kind]}\n", output), output
    assert "not starting" in output and "Traceback" not in output
    assert time.monotonic() - started < 15  # was: a hang (a busy machine may make the start slow, not endless)
    assert usage.ru_utime + usage.ru_stime < REFUSED_WITHIN + 2  # CPU: the interpreter's start and the refusal
    assert_unopened(config_dir / name, kind)


def test_server_refuses_reloads_of_what_is_not_a_regular_file(config_dir: Path, tmp_path: Path) -> None:
    """Every kind as every file, one reload each: refused within a second with the file and line, the
    server answering and its memory as it was; then a good reload is still applied, and SIGTERM ends it."""
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        server.wait_for_log("health checks are off|health cycle done", timeout=20)
        assert server.query("deb.cdn.example.org").answer
        before = rss_mib(server.process.pid)
        for name in FILES:
            path = config_dir / name
            saved = path.read_bytes() if path.is_file() else None
            for kind, message in KINDS.items():
                refused = server.log().count("reload refused: ")
                make_hostile(path, kind)
                started = time.monotonic()
                server.process.send_signal(signal.SIGHUP)
                line = rf"reload refused: {re.escape(str(path))}:1: not read: {message}\n"
                while not re.search(line, server.log()):
                    assert time.monotonic() - started < REFUSED_WITHIN, (name, kind, server.log()[-3000:])
                    time.sleep(0.01)
                assert server.log().count("reload refused: ") > refused
                assert server.query("deb.cdn.example.org", tcp=True).answer
                assert_unopened(path, kind)
                undo_hostile(path, saved)
        grown = rss_mib(server.process.pid) - before
        assert grown < 30, f"the supervisor grew by {grown:.0f} MiB"  # /dev/zero: 2.7 GB
        (config_dir / "default.yaml").write_text("deb:\n  def2: 0\n")
        applied = server.log().count("configuration reloaded")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_log("configuration reloaded" + r"(?s:.*)configuration reloaded" * applied, timeout=20)
        assert {rr.address for rrset in server.query("deb.cdn.example.org").answer for rr in rrset} == {"203.0.113.2"}
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_geoip_database_that_is_not_a_regular_file_is_refused_unopened(config_dir: Path, kind: str) -> None:
    """`check` and `serve` refuse a configured GeoIP database that is not a regular file at once, naming it."""
    database = config_dir / "test.mmdb"
    make_hostile(database, kind)
    code, output, seconds, _ = run_check(config_dir)
    assert code == 1 and "test.mmdb" in output, output
    assert "Traceback" not in output and seconds < 15, (seconds, output)
    started = time.monotonic()
    served = subprocess.run([sys.executable, "-m", "dnsbalance", "serve", "--config", str(config_dir),
                             "--listen", "127.0.0.1:0", "--status", "off"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert served.returncode == 1 and "test.mmdb" in served.stdout + served.stderr, served
    assert time.monotonic() - started < 15
    assert_unopened(database, kind)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_rebuilt_geoip_database_that_is_not_a_regular_file_is_passed_over(config_dir: Path, tmp_path: Path,
                                                                             kind: str) -> None:
    """The state folder's rebuilt database is not checked by the configuration (it is runtime state): it is
    copied before it is mapped, and a FIFO there would have blocked the start, /dev/zero filled the disk. The
    server says why it is not used and answers from the package's built-in database."""
    settings = config_dir / "dnsbalance.yaml"
    settings.write_text(settings.read_text().replace("database: test.mmdb", "database: builtin"))
    state = config_dir / "state"
    (state / "geoip").mkdir(parents=True, exist_ok=True)
    rebuilt = state / "geoip" / BUILTIN_NAME
    make_hostile(rebuilt, kind)
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        assert server.query("deb.cdn.example.org").answer
        server.wait_for_log(rf"not using the state folder's rebuilt database .*not read: {KINDS[kind]}")
    finally:
        server.stop()
    assert_unopened(rebuilt, kind)
