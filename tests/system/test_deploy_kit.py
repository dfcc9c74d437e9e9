"""The deploy kit as shipped: the systemd unit passes `systemd-analyze verify`, and its own command lines
(ExecStartPre, ExecStart, ExecReload) run against a configuration laid out as the unit's install comments
lay it out, with the configuration folder read-only (as ProtectSystem=strict makes /etc) and the state
folder writable (as StateDirectory= makes /var/lib/dnsbalance).

When the tests run as root, the command lines run as `nobody` (setpriv), as the unit runs them as its own
unprivileged user: root would write through the read-only modes and hide the fault this kit once had."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.harness import ROOT

KIT = ROOT / "deploy"
UNIT = KIT / "dnsbalance.service"
BINARY = "/opt/dnsbalance/bin/dnsbalance"
ETC = "/etc/dnsbalance"
NOBODY = 65534


def unit_settings(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of the unit, in order, per key."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def install_lines(text: str) -> list[str]:
    """The install comment's command lines that lay out the configuration (`cp ... /etc/dnsbalance ...`)."""
    return [line.lstrip("#").strip() for line in text.splitlines()
            if line.startswith("#") and "cp " in line and ETC in line]


@pytest.fixture
def root() -> Iterator[Path]:
    """A stand-in for the host's / that `nobody` can traverse (pytest's tmp_path is root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dnsbalance-kit-"))
    path.chmod(0o755)
    yield path
    for folder, dirs, _ in os.walk(path):  # the read-only configuration must be writable again to go
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
    shutil.rmtree(path)


def test_unit_passes_systemd_analyze_verify(root: Path) -> None:
    """`systemd-analyze verify` on a copy of the unit whose /opt/dnsbalance is a real installation's
    stand-in (verify insists that the Exec binaries exist and are executable): no error and no warning,
    so every key is known and every value parses. A misspelt value in the same copy is reported (the
    check can fail), and the unmodified unit fails only for its missing binary."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: .ci/run installs the systemd package"
    binary = root / BINARY.lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!/bin/sh\nexec {sys.executable} -m dnsbalance \"$@\"\n")
    binary.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8")
    assert sum(line.count(BINARY) for line in text.splitlines() if not line.startswith("#")) == 3
    copy = root / "dnsbalance.service"
    copy.write_text(text.replace(BINARY, str(binary)))

    # verify runs `man` on Documentation=: the kit's page, installed where MANPATH finds it
    (root / "man" / "man8").mkdir(parents=True)
    with (root / "man" / "man8" / "dnsbalance.8").open("w") as page:
        subprocess.run([sys.executable, "-m", "dnsbalance.manpage"], stdout=page, cwd=ROOT, check=True, timeout=60)

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "MANPATH": str(root / "man")})

    verified = verify(copy)
    assert verified.returncode == 0 and verified.stdout + verified.stderr == "", verified.stderr

    typo = root / "typo.service"
    typo.write_text(copy.read_text().replace("ProtectSystem=strict", "ProtectSystem=strickt"))
    assert "strickt" in verify(typo).stderr
    shipped = verify(UNIT)
    assert shipped.returncode != 0 and f"{BINARY} is not executable" in shipped.stderr


def test_the_kit_state_folder_is_the_units_state_directory() -> None:
    """/etc is read-only under ProtectSystem=strict: the configuration the kit installs keeps its state in
    the folder systemd makes writable for the unit, and the unit checks before it starts and reloads with
    `dnsbalance reload`."""
    settings = unit_settings(UNIT.read_text(encoding="utf-8"))
    assert settings["ProtectSystem"] == ["strict"]
    state_dirs = settings["StateDirectory"]
    yaml = (KIT / "dnsbalance.yaml").read_text(encoding="utf-8")
    state_dir = re.search(r"^state_dir:\s*(\S+)", yaml, re.M)
    assert state_dir and state_dir.group(1) in [f"/var/lib/{d}" for d in state_dirs]
    assert settings["ExecStartPre"] == [f"{BINARY} check --config {ETC}"]
    assert settings["ExecReload"] == [f"{BINARY} reload --config {ETC}"]
    assert settings["ExecStart"][0].startswith(f"{BINARY} serve --config {ETC}")
    assert install_lines(UNIT.read_text(encoding="utf-8")) == [
        f"cp -r config {ETC} && cp deploy/dnsbalance.yaml {ETC}/dnsbalance.yaml"]


def test_the_kit_puts_the_command_on_path() -> None:
    """After the install comment's steps `dnsbalance` is a command, not /opt/dnsbalance/bin/dnsbalance."""
    text = UNIT.read_text(encoding="utf-8")
    steps = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#   ")]
    link = steps.index(f"ln -sf {BINARY} /usr/local/bin/dnsbalance")  # on Debian's default PATH, root's too
    assert steps.index(f"python3 -m venv /opt/dnsbalance && {BINARY.removesuffix('dnsbalance')}pip install .") < link


def _as_unit_user() -> list[str]:
    return (["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if os.geteuid() == 0
            else [])


def _command(line: str, root: Path) -> list[str]:
    """A unit's command line with the installation's paths replaced by this checkout's and the temp root's."""
    words = shlex.split(line)
    assert words[0] == BINARY
    return _as_unit_user() + [sys.executable, "-m", "dnsbalance"] + [
        word.replace(ETC, str(root / ETC.lstrip("/"))) for word in words[1:]]


def _lay_out(root: Path, state_dir: str | None = None) -> tuple[Path, Path]:
    """The install comment's `cp` lines run with /etc moved under `root`; the copied dnsbalance.yaml gets
    loopback port 0 instead of port 53, and /var/lib/dnsbalance under `root` (or `state_dir` when given).
    Then the state folder is made as StateDirectory=dnsbalance makes it and the configuration read-only."""
    (root / "etc").mkdir()
    etc = root / ETC.lstrip("/")
    for line in install_lines(UNIT.read_text(encoding="utf-8")):
        subprocess.run(["bash", "-c", line.replace(ETC, str(etc))], cwd=ROOT, check=True)
    shutil.rmtree(etc / "state", ignore_errors=True)  # copied from a checkout where the example server ran
    settings = etc / "dnsbalance.yaml"
    text = settings.read_text(encoding="utf-8")
    for old, new in (('listen: ["0.0.0.0:53", "[::]:53"]', 'listen: ["127.0.0.1:0"]'),
                     ("status: 127.0.0.1:8053", "status: 127.0.0.1:0"),
                     ("state_dir: /var/lib/dnsbalance", f"state_dir: {state_dir or root / 'var/lib/dnsbalance'}")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    settings.write_text(text)
    # Nothing in the example is probed: the test must send nothing beyond loopback.
    assert not re.search(r"^\s*[^#\s][^#]*\burl:", (etc / "mirrors.yaml").read_text(encoding="utf-8"), re.M)
    state = root / "var/lib/dnsbalance"
    state.mkdir(parents=True, mode=0o750)
    if os.geteuid() == 0:
        os.chown(state, NOBODY, NOBODY)
    for folder, dirs, files in os.walk(etc):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    return etc, state


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_units_command_lines_serve_and_reload(root: Path) -> None:
    """ExecStartPre says ok; ExecStart answers, writes its pid file and lock in the state folder; ExecReload
    finds the server and it applies the configuration; the counters are saved (at exit) without a warning."""
    etc, state = _lay_out(root)
    laid_out = sorted(p.name for p in etc.iterdir())
    settings = unit_settings(UNIT.read_text(encoding="utf-8"))

    checked = _run(_command(settings["ExecStartPre"][0], root))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1].startswith("ok: zone cdn.example.org")

    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(_command(settings["ExecStart"][0], root), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port = int(_wait_for(log_path, server, r"on 127\.0\.0\.1:(\d+) \(udp, tcp\) with 2 workers").group(1))
        answer = dns.query.udp(dns.message.make_query("deb.cdn.example.org", "A"), "127.0.0.1", port=port,
                               timeout=3)
        assert any(rrset.rdtype == dns.rdatatype.A for rrset in answer.answer)
        assert (state / "dnsbalance.pid").read_text().strip() == str(server.pid)
        assert (state / "dnsbalance.lock").exists()

        reloaded = _run(_command(settings["ExecReload"][0], root))
        assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
        assert f"sent SIGHUP to dnsbalance (pid {server.pid}): applied" in reloaded.stdout

        # An operator's commands, typed without --config from a folder with no ./config: the configuration
        # folder's default is /etc/dnsbalance (here moved under `root`, so named by the variable that
        # overrides the default), and the server is found through its state folder.
        operator = {**os.environ, "DNSBALANCE_CONFIG": str(etc)}
        for command in (["reload"], ["status"]):
            done = subprocess.run([sys.executable, "-m", "dnsbalance", *command], cwd=root, capture_output=True,
                                  text=True, timeout=60, env={**operator, "PYTHONPATH": str(ROOT)})
            assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("DNSBALANCE OK - ") and f"pid {server.pid}, configuration {etc}" in done.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert server.returncode == 0, log
    saved = sorted(p.name for p in (state / "counters").iterdir())
    assert saved and all(name.endswith(".json") for name in saved), saved
    assert "cannot save" not in log and "running without a pid file" not in log, log
    assert "Traceback" not in log, log
    assert not (state / "dnsbalance.pid").exists()  # removed at exit
    assert sorted(p.name for p in etc.iterdir()) == laid_out  # nothing written into the configuration


def test_check_refuses_a_state_folder_inside_the_read_only_configuration(root: Path) -> None:
    """The fault the kit once had: the example's `state_dir: state` inside /etc/dnsbalance, which the unit
    makes read-only. ExecStartPre fails with the setting's file and line, so the unit never starts a server
    that `reload` could not find."""
    etc, _ = _lay_out(root, "state")
    settings = etc / "dnsbalance.yaml"
    line = next(i for i, row in enumerate(settings.read_text().splitlines(), 1) if row.startswith("state_dir:"))
    unit = unit_settings(UNIT.read_text(encoding="utf-8"))
    checked = _run(_command(unit["ExecStartPre"][0], root))
    assert checked.returncode == 1
    reloaded = _run(_command(unit["ExecReload"][0], root))  # and `reload` says where to look
    assert reloaded.returncode == 3 and "a server using it runs without pid file or lock; see `dnsbalance check`" \
        in reloaded.stderr, reloaded.stderr
    assert re.search(rf"^{re.escape(str(settings))}:{line}: state_dir {re.escape(str(etc))}/state cannot be "
                     rf"created in {re.escape(str(etc))}: Permission denied \(checked as user \S+;",
                     checked.stdout, re.M), checked.stdout + checked.stderr


def _wait_for(path: Path, process: subprocess.Popen[bytes], pattern: str, timeout: float = 20) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found
        assert process.poll() is None, path.read_text(encoding="utf-8", errors="replace")
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} within {timeout}s:\n{path.read_text(errors='replace')}")


def test_a_failing_counters_save_is_logged_once_until_it_changes_or_works(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The counters are saved every 5 seconds: a state folder that cannot take them must not log 17,280
    warnings a day. The first failure is logged, repeats are not, recovery is, and a new failure again."""
    from dnsbalance.stats.counters import QueryStats

    blocker = tmp_path / "state"
    stats = QueryStats(blocker / "counters" / "main.json")
    blocker.write_text("a file where the state folder should be\n")  # fails for root too
    with caplog.at_level("INFO", logger="dnsbalance.stats.counters"):
        for _ in range(5):
            stats.save()
        assert [r.levelname for r in caplog.records] == ["WARNING"]
        assert "cannot save query counters to" in caplog.records[0].getMessage()
        blocker.unlink()
        stats.save()
        stats.save()
        assert (blocker / "counters" / "main.json").exists()
        assert len(caplog.records) == 2 and "saved query counters to" in caplog.records[1].getMessage()
        shutil.rmtree(blocker)
        blocker.write_text("in the way again\n")
        stats.save()
        stats.save()
    assert len(caplog.records) == 3 and "cannot save" in caplog.records[2].getMessage()
    assert stat.S_ISREG(blocker.stat().st_mode)


MAN_DIR = "/usr/local/share/man"


def test_the_kit_installs_the_man_page_and_it_lists_every_command(root: Path) -> None:
    """The unit's install comment writes dnsbalance(8) from the installed package (`python -m
    dnsbalance.manpage`); `man -l` renders it without a warning and it has a section, examples and exit codes
    for every command the parser has. The unit points at it (Documentation=, `systemctl help dnsbalance`)."""
    from dnsbalance.cli import _parser
    from dnsbalance.manpage import _commands

    text = UNIT.read_text(encoding="utf-8")
    assert unit_settings(text)["Documentation"] == ["man:dnsbalance(8)"]
    lines = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#") and "man8" in line]
    assert len(lines) == 2 and lines[1].startswith("/opt/dnsbalance/bin/python -m dnsbalance.manpage >"), lines
    for line in lines:
        line = line.replace("/opt/dnsbalance/bin/python", sys.executable).replace(MAN_DIR, str(root / "man"))
        subprocess.run(["bash", "-c", line], cwd=ROOT, check=True, timeout=60)
    page = root / "man" / "man8" / "dnsbalance.8"
    man = shutil.which("man")
    assert man, "man missing: tools/install-test-packages installs man-db"
    shown = subprocess.run([man, "-l", str(page)], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "", "MANPAGER": "cat",
                                "PAGER": "cat", "LC_ALL": "C.UTF-8"})
    assert shown.returncode == 0 and not shown.stderr, shown.stderr
    rendered = re.sub(r".\x08", "", shown.stdout)  # overstrike bold and underline, if any
    warned = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True,
                            timeout=60)
    assert warned.returncode == 0 and not warned.stderr, warned.stderr
    assert rendered.startswith("DNSBALANCE(8)")
    headings = re.findall(r"^ {3}(\S+)$", rendered, re.MULTILINE)  # the .SS lines: one per command
    commands = list(_commands(_parser()))
    assert len(commands) >= 11 and headings == commands, (headings, commands)
    sections = re.split(r"^ {3}\S+$", rendered.split("\nCOMMANDS\n")[1].split("\nEXAMPLES\n")[0], flags=re.MULTILINE)
    for name, section in zip(commands, sections[1:]):
        assert f"dnsbalance {name}" in section and "Exit status:" in section and "Examples:" in section, name
    for heading in ("SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"):
        assert re.search(rf"^{heading}$", rendered, re.MULTILINE), heading
