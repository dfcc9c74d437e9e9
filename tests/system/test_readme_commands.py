"""The README's first two commands, the ones a newcomer pastes on a fresh Debian 12 machine, and `.ci/run`,
which must run the README's test command word for word."""
from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

from tests.harness import ROOT


def readme_commands() -> list[str]:
    """The indented one-line commands of the README's opening section (before the first `##` heading)."""
    opening = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    return [line.strip() for line in opening.splitlines() if line.startswith("    ") and line.strip()]


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    run, tests = readme_commands()
    assert run.endswith("dnsbalance serve") and tests.endswith(".venv/bin/pytest")
    ci = [line for line in (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1] == tests


INSTALLER = "tools/install-test-packages"


def _steps(command: str) -> list[list[str]]:
    """The command's steps; the test-package script stands for the `apt-get install` it runs."""
    steps = [shlex.split(step.replace(">/dev/null", "")) for step in command.split("&&")]
    return [_script_install() if step == [INSTALLER] else step for step in steps]


def _script_install() -> list[str]:
    text = (ROOT / INSTALLER).read_text(encoding="utf-8")
    packages = re.search(r'^PACKAGES="([^"]+)"$', text, re.M)
    assert packages and "apt-get install -y -qq --no-install-recommends $PACKAGES" in text
    return ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages.group(1).split()]


def test_every_install_leaves_out_recommends_and_pins_python_packages() -> None:
    """Recommends would pull in ~150 more packages and start services (node-exporter on :9100); a release
    upstream must not change what a fresh clone installs (PyYAML 6.0.4 once turned main red by itself)."""
    for command in readme_commands():
        steps = _steps(command)
        assert all("--no-install-recommends" in step for step in steps if step[:2] == ["apt-get", "install"])
        pip = [step for step in steps if step[0].endswith("pip") and "install" in step]
        assert pip and all(step[step.index("-c") + 1] == "requirements.lock" for step in pip), command
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[^=\s]+", line) for line in pins), pins
    assert any(line.lower().startswith("pyyaml==") for line in pins)


def test_each_command_updates_apt_and_installs_venv_before_making_one() -> None:
    """Debian 12's python3 has no `venv` without python3-venv, and a fresh machine has no package lists."""
    for command in readme_commands():
        steps = _steps(command)
        venv = next(i for i, step in enumerate(steps) if step[:3] == ["python3", "-m", "venv"])
        update = next(i for i, step in enumerate(steps) if step[:2] == ["apt-get", "update"])
        install = next(i for i, step in enumerate(steps) if step[:2] == ["apt-get", "install"]
                       and "python3-venv" in step)
        assert update < install < venv, command


def test_every_package_the_commands_install_is_known_to_apt() -> None:
    """Each name the test command installs is a Debian package (from the machine's package lists), and the
    ones the tests look for are among them: systemd-analyze (the deploy kit's test) comes with `systemd`."""
    assert shutil.which("apt-cache"), "a Debian machine is expected"
    packages = {word for command in readme_commands() for step in _steps(command)
                if step[:2] == ["apt-get", "install"] for word in step[2:] if not word.startswith("-")}
    assert {"python3-venv", "systemd", "unbound", "knot", "coturn"} <= packages
    shown = subprocess.run(["apt-cache", "show", "--no-all-versions", *sorted(packages)], capture_output=True,
                           text=True)
    assert set(re.findall(r"^Package: (\S+)$", shown.stdout, re.M)) == packages, shown.stderr


def test_the_quickstart_port_is_one_nothing_standard_uses() -> None:
    """The README's dig asks the port the example configuration listens on, and that port is free of standard
    services: 5353 was multicast DNS, which avahi-daemon holds on every Debian desktop, so `serve` failed
    there. Not in the host's services list, no privilege needed, below the kernel's ephemeral range (no
    outgoing connection may hold it when the server starts)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    dig = re.search(r"`dig @127\.0\.0\.1 -p (\d+) deb\.cdn\.example\.org A", readme)
    listen = re.search(r'^listen: \["127\.0\.0\.1:(\d+)"\]', (ROOT / "config/dnsbalance.yaml").read_text(), re.M)
    assert dig and listen and dig.group(1) == listen.group(1)
    port = int(listen.group(1))
    for protocol in ("udp", "tcp"):
        try:
            taken = socket.getservbyport(port, protocol)
        except OSError:
            taken = None
        assert taken is None, f"{port}/{protocol} is {taken} in /etc/services"
    assert socket.getservbyport(5353, "udp") == "mdns"  # the check itself can fail: the old port is listed
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert 1024 <= port < low
    doc = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    assert f'`["127.0.0.1:{port}"]`' in doc
