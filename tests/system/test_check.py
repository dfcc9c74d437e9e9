"""`dnsbalance check`: each mistake has its own fixture folder (tests/fixtures/check/CASE, laid over
base/; a file NAME.absent removes NAME), and the exact messages are asserted."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

CHECK = Path(__file__).resolve().parent.parent / "fixtures" / "check"

EXPECTED: dict[str, tuple[int, list[str]]] = {
    "all_drained": (1, [
        '{dir}/default.yaml:3: security: every entry is drained (priority 10000) and no wider table serves it',
    ]),
    "bad_address": (1, [
        "{dir}/mirrors.yaml:5: mirror 'beta': '192.0.2.300' is not an IPv4 or IPv6 address",
        "{dir}/mirrors.yaml:6: mirror 'beta': '2001:db8::g' is not an IPv4 or IPv6 address",
    ]),
    "bad_owner": (1, [
        "{dir}/default.yaml:3: 'de b' is not a valid DNS name",
    ]),
    "asn_bad_name": (1, [
        "{dir}/asn/ASX.yaml:1: unknown AS file name 'ASX' (expected AS<number>, e.g. AS2500.yaml)",
        "{dir}/asn/as02500.yaml:1: asn AS2500 is defined twice: AS2500.yaml and as02500.yaml",
    ]),
    "asn_database_missing": (1, [
        "{dir}/dnsbalance.yaml:6: geoip: asn_database 'nosuch.mmdb' does not exist: no file {dir}/nosuch.mmdb (a "
        "relative path is read from the configuration folder, {dir})",
    ]),
    "asn_without_database": (1, [
        "{dir}/asn/AS2500.yaml:1: AS2500 is an AS table but dnsbalance.yaml sets no geoip.asn_database to find a client's AS",
    ]),
    "both_alpha2_alpha3": (1, [
        '{dir}/country/JPN.yaml:1: country JP is defined twice: JP.yaml and JPN.yaml',
    ]),
    "drained_but_served": (0, [
        '{dir}/country/JP.yaml:1: warning: deb: every entry is drained (priority 10000); the continent AS table serves these clients',
    ]),
    "duplicate_key": (1, [
        "{dir}/default.yaml:3: deb: duplicate key 'alpha'",
    ]),
    "many": (1, [
        "{dir}/mirrors.yaml:3: mirror 'beta': 'not-an-address' is not an IPv4 or IPv6 address",
        "{dir}/mirrors.yaml:4: mirror 'relay_user': url must be an http(s):// or rsync:// URL, got 'ftp://127.0.0.1/'",
        "{dir}/default.yaml:3: deb: unknown mirror 'nosuch'",
        "{dir}/default.yaml:4: deb: priority of 'beta' must be an integer 0..10000, got 20000",
        '{dir}/country/JPN.yaml:1: country JP is defined twice: JP.yaml and JPN.yaml',
    ]),
    "missing_default": (1, [
        '{dir}/default.yaml:1: file is missing',
    ]),
    "network_duplicate": (1, [
        "{dir}/network/isp.yaml:3: networks: 10.0.0.0/8 is also listed in network/campus.yaml:2",
    ]),
    "network_host_bits": (1, [
        "{dir}/network/campus.yaml:2: networks: '10.0.0.1/8' has host bits set (the network is 10.0.0.0/8)",
        "{dir}/network/campus.yaml:3: networks: '2001:db8::1/32' has host bits set (the network is 2001:db8::/32)",
        "{dir}/network/campus.yaml:4: networks: 'not-a-prefix' is not an IPv4 or IPv6 prefix",
        "{dir}/network/campus.yaml:5: networks: '::ffff:10.0.0.0/104' is IPv4-mapped; clients are matched as IPv4, so write the IPv4 prefix",
    ]),
    "network_nested": (0, [
        "{dir}/network/campus.yaml:2: warning: networks: 10.1.0.0/16 is inside 10.0.0.0/8 of network/isp.yaml:2: its clients get this table first, the other for names this one lacks",
        "{dir}/network/campus.yaml:3: warning: networks: 10.1.2.0/24 is inside 10.1.0.0/16 (line 2) of the same table and changes nothing",
    ]),
    "network_no_networks": (1, [
        "{dir}/network/campus.yaml:1: networks: required in a network table (a list of IPv4/IPv6 prefixes)",
        "{dir}/network/lab.yaml:1: networks: must be a non-empty list of IPv4/IPv6 prefixes, got an empty list",
    ]),
    "no_address": (1, [
        "{dir}/mirrors.yaml:4: mirror 'empty' has no address",
    ]),
    "priority_range": (1, [
        "{dir}/default.yaml:2: deb: priority of 'alpha' must be an integer 0..10000, got 10001",
        "{dir}/default.yaml:3: deb: priority of 'beta' must be an integer 0..10000, got -1",
    ]),
    "priority_type": (1, [
        "{dir}/default.yaml:2: deb: priority of 'alpha' must be an integer 0..10000, got 'high'",
        "{dir}/default.yaml:3: deb: priority of 'beta' must be an integer 0..10000, got 1.5",
    ]),
    "uncovered_name": (0, [
        '{dir}/country/JP.yaml:3: warning: security: not in default.yaml, so clients of other regions get no answer for it',
    ]),
    "misspelt_mirror": (1, [
        "{dir}/default.yaml:3: deb: unknown mirror 'osak' (did you mean 'osaka'?)",
        "{dir}/default.yaml:4: deb: unknown mirror 'Beta' (did you mean 'beta'?)",
    ]),
    "country_not_iso": (1, [
        "{dir}/country/UK.yaml:1: unknown country code 'UK' (expected ISO 3166 alpha-2 or alpha-3; did you mean "
        "GB.yaml (United Kingdom)?)",
        "{dir}/country/japan.yaml:1: unknown country code 'japan' (expected ISO 3166 alpha-2 or alpha-3; did you "
        "mean JP.yaml (Japan)?)",
    ]),
    "continent_by_name": (1, [
        "{dir}/continent/EUR.yaml:1: unknown continent code 'EUR' (expected one of AF AN AS EU NA OC SA; did you "
        "mean EU.yaml (Europe)?)",
        "{dir}/continent/Europe.yaml:1: unknown continent code 'Europe' (expected one of AF AN AS EU NA OC SA; did "
        "you mean EU.yaml (Europe)?)",
    ]),
    "geoip_relative": (1, [
        "{dir}/dnsbalance.yaml:6: geoip: database 'GeoLite2-Country.mmdb' does not exist: no file "
        "{dir}/GeoLite2-Country.mmdb (a relative path is read from the configuration folder, {dir})",
    ]),
    "unknown_continent": (1, [
        "{dir}/continent/XX.yaml:1: unknown continent code 'XX' (expected one of AF AN AS EU NA OC SA)",
    ]),
    "unknown_country": (1, [
        "{dir}/country/QQ.yaml:1: unknown country code 'QQ' (expected ISO 3166 alpha-2 or alpha-3)",
    ]),
    "unknown_entries": (0, [
        "{dir}/Default.yaml:1: warning: unknown file 'Default.yaml' in the configuration folder is not read (expected dnsbalance.yaml, mirrors.yaml, default.yaml, and the folders continent/, country/, network/, asn/)",
        "{dir}/mirrors.yml:1: warning: unknown file 'mirrors.yml' in the configuration folder is not read (expected dnsbalance.yaml, mirrors.yaml, default.yaml, and the folders continent/, country/, network/, asn/)",
        "{dir}/networks:1: warning: unknown folder 'networks' in the configuration folder is not read (expected dnsbalance.yaml, mirrors.yaml, default.yaml, and the folders continent/, country/, network/, asn/)",
    ]),
    "unknown_key": (1, [
        "{dir}/dnsbalance.yaml:2: dnsbalance.yaml: unknown key 'tll' (did you mean 'ttl'?) (expected one of: zone, ttl, answers, min_answers, listen, nameservers, soa, geoip, health, state_dir, nsid, cookies, cookie_secret, rrl, tcp, status, archives, reload, cluster, dnssec)",
    ]),
    "unknown_mirror": (1, [
        "{dir}/default.yaml:3: deb: unknown mirror 'gamma'",
    ]),
    "yaml_indentation": (1, [
        "{dir}/default.yaml:3: YAML syntax error: line 3 'beta: 20' is indented more than line 2 'alpha: 10', "
        "which already has a value: indent it like line 2 (2 spaces) to make it a sibling",
    ]),
    "yaml_list_in_mapping": (1, [
        "{dir}/default.yaml:4: YAML syntax error: line 4 '- beta' is a list item inside a mapping (keys from line 3): "
        "a list goes under a key, 'key:' then its items indented",
    ]),
    "yaml_syntax": (1, [
        "{dir}/country/JP.yaml:3: YAML syntax error: the '[' on line 3 is never closed (line 4 is reached without "
        "its ']'), or a ',' is missing between two of its items",
    ]),
}


def assemble(case: str, target: Path) -> Path:
    shutil.copytree(CHECK / "base", target)
    for path in (CHECK / case).rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(CHECK / case)
        if path.suffix == ".absent":
            (target / relative.with_suffix("")).unlink()
        else:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / relative)
    return target


def run_check(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnsbalance", "check", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_every_case_has_a_fixture() -> None:
    cases = {p.name for p in CHECK.iterdir() if p.is_dir() and p.name != "base"}
    assert cases == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_check_reports_exact_problems(case: str, tmp_path: Path) -> None:
    config = assemble(case, tmp_path / "config")
    result = run_check(config)
    exit_code, lines = EXPECTED[case]
    reported = [line for line in result.stdout.splitlines() if line.startswith(str(config))]
    assert reported == [line.replace("{dir}", str(config)) for line in lines]
    assert result.returncode == exit_code, result.stdout + result.stderr


def test_base_and_example_configs_are_clean() -> None:
    for config in (CHECK / "base", ROOT / "config"):
        result = run_check(config)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("ok: zone cdn.example.org")
