"""Issue 23's configuration and the readers of what ftpsync publishes, in process: `require:` and the served
probes' keys in dnsbalance.yaml and mirrors.yaml (each mistake at its file:line), _hierarchy and the trace's
Architectures line."""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from dnsbalance.cli import main
from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.problems import Severity
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.build import build_table
from dnsbalance.ranking.pool import Why
from dnsbalance.health.checks.ftpsync_lock import own_line
from dnsbalance.health.requirements import architectures_of, required, requirement_keys
from dnsbalance.health.served import at_address, served_targets
from dnsbalance.health.view import HealthView

SETTINGS = """\
zone: cdn.example.org
nameservers: {ns1.cdn.example.org: [192.0.2.53]}
soa: {rname: hostmaster.example.org}
health:
  addresses: true
  vhost: true
"""
MIRRORS = """\
mirrors:
  alpha: {addresses: [192.0.2.1, "2001:db8::1"], url: "http://alpha.example.org/debian/"}
  beta: {addresses: [192.0.2.2], url: "https://beta.example.org/debian/", host: beta.example.net}
"""
DEFAULT = "deb:\n  alpha: 10\n  beta: 20\nports:\n  alpha: 10\n"


def folder(tmp_path: Path, settings: str = SETTINGS, mirrors: str = MIRRORS) -> Path:
    target = tmp_path / "config"
    target.mkdir()
    (target / "dnsbalance.yaml").write_text(settings)
    (target / "mirrors.yaml").write_text(mirrors)
    (target / "default.yaml").write_text(DEFAULT)
    return target


def test_require_mistakes_are_named_at_their_line(tmp_path: Path) -> None:
    settings = SETTINGS + "  require:\n    deb: {architectures: [arm64]}\n    nosuch: {architectures: [arm64]}\n" \
                          "    ports: {architectures: ARM}\n"
    config, problems = check_config(folder(tmp_path, settings))
    said = [str(p) for p in problems if p.severity is Severity.ERROR]
    assert config is None
    assert any("dnsbalance.yaml:9" in s and "no table has the name 'nosuch'" in s for s in said), said
    assert any("dnsbalance.yaml:10" in s and "architectures must be a non-empty list" in s for s in said), said
    assert len(said) == 2


def test_served_targets_are_each_address_under_each_balanced_name(tmp_path: Path) -> None:
    settings = SETTINGS + "  require:\n    deb: {architectures: [arm64, amd64]}\n"
    config, problems = check_config(folder(tmp_path, settings))
    assert config is not None, [str(p) for p in problems]
    keys = [s.key for s in served_targets(config)]
    assert keys == ["alpha@192.0.2.1#deb.cdn.example.org", "alpha@192.0.2.1#ports.cdn.example.org",
                    "alpha@2001:db8::1#deb.cdn.example.org", "alpha@2001:db8::1#ports.cdn.example.org",
                    "beta@192.0.2.2#beta.example.net"]  # beta's own `host:` stands for every name
    assert at_address("https://beta.example.org:8443/debian/x", "2001:db8::1") == "https://[2001:db8::1]:8443/debian/x"
    assert required(config, config.mirrors["alpha"], "default") == ("amd64", "arm64")
    assert requirement_keys(config) == {"alpha+amd64": "alpha", "alpha+arm64": "alpha", "beta+amd64": "beta",
                                        "beta+arm64": "beta"}


def test_what_ftpsync_publishes_is_read() -> None:
    hierarchy = (b"ftp-master.debian.org ftp-master.debian.org ftp-master.debian.org unknown\n"
                 b"jp.mirror jp.mirror jp-host.test ftp-master.debian.org\n"
                 b"ftp.jaist.ac.jp ftp.jaist.ac.jp jaist.test jp.mirror\n")
    assert own_line(hierarchy) == ("ftp.jaist.ac.jp", "ftp.jaist.ac.jp")  # the last line is the mirror's own
    assert own_line(b"<html>\n") is None and own_line(b"") is None
    assert architectures_of(b"Date: x\nArchitectures: amd64 arm64 source \nUpstream-mirror: y\n") == (
        "amd64", "arm64", "source")
    assert architectures_of(b"Architectures: GUESSED:{ amd64 i386}\n") == ("amd64", "i386")
    assert architectures_of(b"Archive serial: 1\n") is None


def test_check_notes_pools_whose_answers_mostly_carry_one_address(capsys) -> None:  # type: ignore[no-untyped-def]
    """Skewed weights (the example's KR table, seoul 90.9% of the AAAA weight): most AAAA answers can only carry
    seoul alone; `check` says so, and what min_answers: 2 would cost (issue 23 item 6's note)."""
    assert main(["check", "--config", str(Path(__file__).resolve().parents[2] / "config")]) == 0
    said = capsys.readouterr()
    assert said.out.startswith("ok: zone")  # stdout keeps its shape: the notes are on stderr
    assert ("note: country KR: deb AAAA: 81.8% of answers carry a single address (no fallback at the client for a "
            "TTL if it dies); min_answers: 2 would deliver seoul: configured 90.9%, delivered 50.0%") in said.err


def test_plan_notes_them_too(capsys) -> None:  # type: ignore[no-untyped-def]
    """`plan` says the same on stderr (the SRV sets are apt's fallback; these are the address answers')."""
    config = str(Path(__file__).resolve().parents[2] / "config")
    assert main(["plan", "--config", config, "--against", config]) == 0
    said = capsys.readouterr()
    assert "no changes for clients" in said.out and "note:" not in said.out
    assert "note: country KR: deb AAAA: 81.8% of answers carry a single address" in said.err


def test_the_builder_answers_an_address_only_on_its_own_verdict(tmp_path: Path) -> None:
    settings = SETTINGS + "  require:\n    deb: {architectures: [arm64]}\n"
    config, problems = check_config(folder(tmp_path, settings))
    assert config is not None, [str(p) for p in problems]
    down = {"alpha@2001:db8::1#deb.cdn.example.org": False, "beta@192.0.2.2#beta.example.net": False}
    table = build_table(config, HealthView(MappingProxyType({"alpha": True, "beta": True, **down})), 1, 1)
    here = Location(None, None, 0)
    aaaa = table.pool_for(here, "deb", RType.AAAA)
    a = table.pool_for(here, "deb", RType.A)
    assert aaaa is not None and aaaa.fail_open  # alpha's only AAAA is down: nothing usable, the configured serve
    assert a is not None and [(c.name, c.addresses) for c in a.candidates] == [("alpha", ("192.0.2.1",))]
    left = table.default.left_out[("deb", RType.A)]
    assert [(x.target, x.why, x.key) for x in left] == [("beta", Why.DOWN, "beta@192.0.2.2#beta.example.net")]
    ports = table.pool_for(here, "ports", RType.AAAA)  # another name: its own verdict, not judged yet
    assert ports is not None and ports.candidates[0].addresses == ("2001:db8::1",) and not ports.fail_open

    partial = {"alpha+arm64": False, "beta+arm64": True}
    table = build_table(config, HealthView(MappingProxyType({"alpha": True, "beta": True, **partial})), 1, 1)
    a = table.pool_for(here, "deb", RType.A)
    assert a is not None and [c.name for c in a.candidates] == ["beta"]
    assert [(x.target, x.why, x.key) for x in table.default.left_out[("deb", RType.A)]] == [
        ("alpha", Why.PARTIAL, "alpha+arm64")]
    # a partial mirror is never served for the name, not even failing open
    table = build_table(config, HealthView(MappingProxyType({"alpha": True, "beta": False, **partial})), 1, 1)
    a = table.pool_for(here, "deb", RType.A)
    assert a is not None and a.fail_open and [c.name for c in a.candidates] == ["beta"]
