"""`dnsbalance plan` (issue 15, item 3): the configuration on disk against the one a running server serves,
read from the copy it keeps in the state folder, with the running health; exit 0 / 2 / 1."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from dnsbalance.configuration.load import check_config
from dnsbalance.ops.plan import plan
from dnsbalance.health.view import HealthView
from tests.harness import ROOT, answer_set, make_config, reload_and_wait, start_server

JP = {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}


def run_plan(config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnsbalance", "plan", "--config", str(config), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def edit(config: Path) -> None:
    """Drain three of Japan's four mirrors, add a mirror to Europe, move Germany's weights."""
    (config / "country" / "JP.yaml").write_text(
        "deb:\n  jp1: 1000\n  jp2: 10000\n  jp3: 10000\n  jp4: 10000\n  jpdrained: 10000\n")
    mirrors = config / "mirrors.yaml"
    mirrors.write_text(mirrors.read_text().replace("  de1:", "  eu3: {addresses: [198.51.100.3]}\n  de1:"))
    (config / "continent" / "EU.yaml").write_text("deb:\n  eu1: 0\n  eu2: 0\n  eu3: 5000\n")
    (config / "country" / "DEU.yaml").write_text("deb:\n  de1: 5000\n  de2: 0\n")


def test_plan_against_the_running_server(config_dir: Path, tmp_path: Path) -> None:
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        assert (config_dir / "state" / "config-in-service.json").exists()
        unchanged = run_plan(config_dir)
        assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
        assert "no changes for clients" in unchanged.stdout

        edit(config_dir)
        result = run_plan(config_dir)
        assert result.returncode == 2, result.stdout + result.stderr
        out = result.stdout
        assert "against the configuration in service" in out
        assert "files: continent/EU.yaml, country/DEU.yaml, country/JP.yaml, mirrors.yaml" in out
        assert "country JP deb A: 4 mirrors -> 1 mirror: Japan will be served by one mirror (jp1)\n" in out
        assert "  drained: jp2 (priority 10000), jp3 (priority 10000), jp4 (priority 10000)\n" in out
        assert "  left alone: jp1, jpdrained (drained)\n" in out
        assert re.search(r"\n    jp1 +47\.4% -> 100\.0% +47\.4% -> 100\.0%\n", out)  # configured, delivered
        assert re.search(r"\n    jp4 +5\.3% -> 0% +5\.3% -> 0%\n", out)
        # JP has two IPv6 mirrors (jp1, jp2)
        assert "country JP deb AAAA: 2 mirrors -> 1 mirror: Japan will be served by one mirror (jp1)\n" in out
        assert "mirror eu3: new (198.51.100.3)\n" in out
        assert "continent EU deb A: 2 mirrors -> 3 mirrors: Europe will be served by three mirrors " \
               "(eu1, eu2, eu3)\n" in out
        assert "  added: eu3 (priority 5000)\n" in out
        assert re.search(r"\n    eu3 +- -> 20\.0% +0% -> 20\.0%\n", out)
        assert "country DE deb A: 2 mirrors -> 2 mirrors: Germany keeps its two mirrors (de2, de1), at other " \
               "shares\n" in out
        assert "  priority: de1 0 -> 5000\n" in out
        assert "5 change(s); `dnsbalance reload` applies them (reload.auto_apply is off: they wait for it)" in out
        assert answer_set(server) == JP  # planned, not applied

        reload_and_wait(server, "configuration reloaded", 1)
        assert answer_set(server) == {"192.0.2.1"}
        applied = run_plan(config_dir)
        assert applied.returncode == 0 and "no changes for clients\n" in applied.stdout, applied.stdout

        # a comment is no change for clients, but the files are said to differ
        jp = config_dir / "country" / "JP.yaml"
        jp.write_text("# Japan: only jp1 during the move\n" + jp.read_text())
        commented = run_plan(config_dir)
        assert commented.returncode == 0
        assert "files: country/JP.yaml\n" in commented.stdout
        assert "no changes for clients (the files differ in comments or layout only)" in commented.stdout
    finally:
        server.stop()


def test_plan_shows_check_problems_and_exits_1(config_dir: Path) -> None:
    (config_dir / "country" / "JP.yaml").write_text("deb:\n  jp1: 0\n  nosuch: 5\n")
    result = run_plan(config_dir)
    assert result.returncode == 1
    assert f"{config_dir}/country/JP.yaml:3: deb: unknown mirror 'nosuch'" in result.stdout
    assert "1 error(s), 0 warning(s): no plan" in result.stderr


def test_plan_without_a_running_server_says_so(config_dir: Path, tmp_path: Path, country_mmdb: Path) -> None:
    result = run_plan(config_dir)
    assert result.returncode == 1
    assert f"no copy of the configuration in service at {config_dir}/state/config-in-service.json" in result.stderr
    # --against compares two folders without a server
    other = make_config(tmp_path / "other", country_mmdb)
    edit(other)
    against = run_plan(other, "--against", str(config_dir))
    assert against.returncode == 2, against.stdout + against.stderr
    assert "country JP deb A: 4 mirrors -> 1 mirror" in against.stdout


def with_urls(config: Path) -> None:
    """Give every mirror a URL, so that health decides whether it is usable."""
    mirrors = config / "mirrors.yaml"
    mirrors.write_text(re.sub(r"^  (\w+): \{addresses: (\[.*?\])\}$", r"  \1: {addresses: \2, url: 'http://127.0.0.1:9/'}",
                              mirrors.read_text(), flags=re.MULTILINE))


def test_plan_delivered_follows_health(tmp_path: Path, country_mmdb: Path) -> None:
    """jp1 is down: what clients get now excludes it, and draining jp2 leaves Japan to jp3 and jp4; draining
    every live JP mirror sends Japan to the continent's table."""
    before = make_config(tmp_path / "before", country_mmdb)
    with_urls(before)
    after = make_config(tmp_path / "after", country_mmdb)
    with_urls(after)
    (after / "country" / "JP.yaml").write_text("deb:\n  jp1: 1000\n  jp2: 10000\n  jp3: 7000\n  jp4: 9000\n")
    health = HealthView({name: name != "jp1" for name in ("jp1", "jp2", "jp3", "jp4", "as1", "as2")})
    running, _ = check_config(before)
    proposed, _ = check_config(after)
    assert running is not None and proposed is not None
    lines = plan(running, proposed, health).lines
    text = "\n".join(lines) + "\n"
    assert "country JP deb A: 3 mirrors -> 2 mirrors: Japan will be served by two mirrors (jp3, jp4)\n" in text
    assert re.search(r"\n    jp1 +47\.4% -> 69\.2% +0%\s*; down now\n", text)  # configured up, delivered 0
    assert re.search(r"\n    jp3 +15\.8% -> 23\.1% +30\.0% -> 75\.0%\n", text)

    (after / "country" / "JP.yaml").write_text("deb:\n  jp1: 1000\n  jp2: 10000\n")
    proposed, _ = check_config(after)
    assert proposed is not None
    text = "\n".join(plan(running, proposed, health).lines) + "\n"
    assert "country JP deb A: 3 mirrors -> continent AS's 2 mirrors: Japan will be served by two mirrors " \
           "(as1, as2) from the continent AS table\n" in text



def test_plan_relays_and_settings(tmp_path: Path, country_mmdb: Path) -> None:
    """SRV names compare by weight within the lowest tier; settings and relay definitions are listed."""
    relays = ("relays:\n  r1: {addresses: [127.0.0.1], stun: 3478}\n  r2: {addresses: [127.0.0.1], stun: 3479}\n"
              "  r3: {addresses: [127.0.0.1], stun: 3480, state: down}\n")
    folders = []
    for name, jp_stun, extra in (("before", "{r1: 0, r2: 5000}", ""),
                                 ("after", "{r1: 0, r2: {priority: 5000, tier: 1}}", "ttl: 60\n")):
        folder = make_config(tmp_path / name, country_mmdb)
        (folder / "mirrors.yaml").write_text((folder / "mirrors.yaml").read_text() + relays)
        with (folder / "country" / "JP.yaml").open("a") as handle:
            handle.write(f"_stun._udp: {jp_stun}\n")
        with (folder / "default.yaml").open("a") as handle:
            handle.write("_stun._udp: {r1: 0}\n")
        settings = folder / "dnsbalance.yaml"
        settings.write_text(settings.read_text().replace("ttl: 30\n", extra or "ttl: 30\n"))
        folders.append(folder)
    (folders[1] / "mirrors.yaml").write_text((folders[1] / "mirrors.yaml").read_text().replace(
        "stun: 3480, state: down", "stun: 3480"))
    running, _ = check_config(folders[0])
    proposed, _ = check_config(folders[1])
    assert running is not None and proposed is not None
    text = "\n".join(plan(running, proposed, HealthView()).lines) + "\n"
    assert "settings: ttl: 30 -> 60\n" in text
    assert "relay r3: state down -> auto\n" in text
    assert "country JP _stun._udp SRV: 2 relays -> 1 relay: Japan will be served by one relay (r1)\n" in text
    assert re.search(r"\n    r2 +33\.3% +33\.3% -> 0%; a later SRV tier: used when the first has nothing usable\n",
                     text), text
    assert "delivered (SRV weight)" in text


def test_reload_setting_is_checked(config_dir: Path) -> None:
    with (config_dir / "dnsbalance.yaml").open("a") as handle:
        handle.write("reload: {auto_apply: sometimes, later: true}\n")
    config, problems = check_config(config_dir)
    assert config is None
    messages = [str(p) for p in problems]
    assert any(m.startswith(f"{config_dir}/dnsbalance.yaml:13: reload: unknown key 'later'") for m in messages)
    assert any(m.startswith(f"{config_dir}/dnsbalance.yaml:13: reload: auto_apply") for m in messages), messages
