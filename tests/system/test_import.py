"""import-dnsbalance: a DNS Balance addr file becomes a configuration with the same numbers."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dnsbalance.configuration.load import load_config
from dnsbalance.ops.addrfile import ImportProblem, convert, parse_addr_db
from tests.harness import FIXTURES, ROOT, start_server

ADDR = FIXTURES / "dnsbalance" / "addr"


def test_import_writes_a_valid_config_with_numbers_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "config"
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "import-dnsbalance", str(ADDR),
                             "--zone", "debian.or.jp", "--out", str(out)], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "country" / "JP.yaml").read_text() == (
        '# imported from DNS Balance namespace "JPN"\n'
        "cdn:\n  m-192-0-2-10: 20\n  m-192-0-2-11: 10\n  m-192-0-2-12: 9900\n  m-192-0-2-13: 10000\n"
        "security:\n  m-192-0-2-11: 0\n")
    config = load_config(out)
    assert config.settings.zone == "debian.or.jp"
    assert set(config.countries) == {"JP", "KR"} and set(config.continents) == {"AS"}
    assert [(e.target, e.priority) for e in config.default.names["cdn"]] == [
        ("m-192-0-2-10", 100), ("m-192-0-2-11", 100), ("m-198-51-100-20", 5000)]
    assert config.mirrors["m-203-0-113-5"].ipv4 == ("203.0.113.5",)
    assert all(m.url is None for m in config.mirrors.values())  # nothing probed until the operator says where


@pytest.mark.parametrize("text,line,message", [
    ('$addr_db = {\n "XYZ" => { "cdn" => [ [[1,2,3,4], 0] ] }\n}', 2, "neither default"),
    ('$addr_db = {\n "default" => {\n "cdn" => [ [[1,2,3,400], 0] ] }\n}', 3, "an address must be"),
    ('$addr_db = {\n "default" => {\n "cdn" => [ [[1,2,3,4], 20000] ] }\n}', 3, "outside 0..10000"),
    ('$addr_db = {\n "default" => {\n "cdn" => [ [[1,2,3,4], 0] \n}', 4, "expected"),
])
def test_import_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ImportProblem) as raised:
        convert(parse_addr_db(text), "debian.or.jp")
    assert raised.value.line == line and message in raised.value.detail


PUBLISHED = FIXTURES / "dnsbalance" / "addr-published"
NETWORKS = FIXTURES / "dnsbalance" / "addr-networks"


def run_import(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnsbalance", "import-dnsbalance", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_import_of_the_published_layout_passes_check_and_serves(tmp_path: Path, country_mmdb: Path) -> None:
    out = tmp_path / "imported"
    result = run_import(str(PUBLISHED), "--zone", "debian.or.jp", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert warnings == [
        f"{PUBLISHED}:9: warning: namespace 'default': 'localhost' answers a loopback address, as DNS Balance "
        "did; imported as it is",
        f"{PUBLISHED}:23: warning: namespace 'SA': 'cdn' lists no address; DNS Balance answered NXDOMAIN there; "
        "left out, so dnsbalance answers from the default table",
        f"{PUBLISHED}:22: warning: namespace 'SA' has no name left to serve: no continent/SA.yaml written",
        f"{PUBLISHED}:27: warning: namespace 'AF': 'cdn' lists no address; DNS Balance answered NXDOMAIN there; "
        "left out, so dnsbalance answers from the default table",
        f"{PUBLISHED}:26: warning: namespace 'AF' has no name left to serve: no continent/AF.yaml written",
    ]
    assert (out / "dnsbalance.yaml").read_text() == (
        "# written by import-dnsbalance\nzone: debian.or.jp\nnameservers:\n  ns.debian.or.jp: [210.157.158.38]\n"
        "soa: {rname: hostmaster.debian.or.jp}\n")
    config = load_config(out)
    assert set(config.continents) == {"AS"} and set(config.countries) == {"JP", "KR"}
    assert set(config.default.names) == {"cdn", "localhost"}  # ns is the zone's name server, with glue
    assert "m-210-157-158-38" not in config.mirrors
    # and it serves: ns answers its glue, cdn the default table
    shutil.copy(country_mmdb, out / "test.mmdb")
    with (out / "dnsbalance.yaml").open("a") as f:
        f.write("geoip: {database: test.mmdb}\nstate_dir: state\n")
    server = start_server(out, tmp_path / "server.log", ipv6=False)
    try:
        reply = server.query("ns.debian.or.jp", "A")
        assert [rr.address for rrset in reply.answer for rr in rrset] == ["210.157.158.38"]
        reply = server.query("debian.or.jp", "NS")
        assert [str(rr.target) for rrset in reply.answer for rr in rrset] == ["ns.debian.or.jp."]
        seen: set[str] = set()  # answer sets may carry one address or both (issue 11): look over several
        for _ in range(40):
            reply = server.query("cdn.debian.or.jp", "A", subnet="4.0.0.0/24")  # BR, continent SA: default
            found = {rr.address for rrset in reply.answer for rr in rrset}
            assert found and found <= {"192.0.2.10", "198.51.100.20"}
            seen |= found
        assert seen == {"192.0.2.10", "198.51.100.20"}
    finally:
        server.stop()


def test_import_refuses_a_non_empty_folder_unless_replace(tmp_path: Path) -> None:
    out = tmp_path / "config"
    out.mkdir()
    (out / "mirrors.yaml").write_text("mirrors:\n  keep: {addresses: [192.0.2.1], url: http://x.example/}\n")
    (out / "country").mkdir()
    (out / "country" / "FR.yaml").write_text("cdn: {keep: 0}\n")
    result = run_import(str(PUBLISHED), "--zone", "debian.or.jp", "--out", str(out))
    assert result.returncode == 1
    assert f"not imported: {out} is not empty; choose another --out, or add --replace" in result.stderr
    assert "url: http://x.example/" in (out / "mirrors.yaml").read_text()
    result = run_import(str(PUBLISHED), "--zone", "debian.or.jp", "--out", str(out), "--replace")
    assert result.returncode == 0, result.stderr
    assert not (out / "country" / "FR.yaml").exists()  # no stale tables
    assert "zone: debian.or.jp" in (out / "dnsbalance.yaml").read_text()


def test_import_default_folder_is_not_the_live_config(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    result = subprocess.run([sys.executable, "-m", "dnsbalance", "import-dnsbalance", str(PUBLISHED), "--zone",
                             "debian.or.jp"], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dnsbalance-import" / "dnsbalance.yaml").is_file()
    assert not any((tmp_path / "config").iterdir())


def test_import_without_name_server_says_so(tmp_path: Path) -> None:
    result = run_import(str(ADDR), "--zone", "debian.or.jp", "--out", str(tmp_path / "out"))
    assert result.returncode == 0
    assert (f"{ADDR}:1: warning: no name server found in the addr file (names such as ns, ns1 or dns, or given "
            "with --nameserver): wrote the placeholder ns1.debian.or.jp with glue 192.0.2.53; set the real ones "
            "in dnsbalance.yaml before serving") in result.stderr


def test_import_named_name_server(tmp_path: Path) -> None:
    imported = convert(parse_addr_db(PUBLISHED.read_text()), "debian.or.jp", nameservers=["localhost"])
    assert "  localhost.debian.or.jp: [127.0.0.1]\n" in imported.files["dnsbalance.yaml"]
    assert "ns:" in imported.files["default.yaml"]  # named: the other names stay tables
    with pytest.raises(ImportProblem) as raised:
        convert(parse_addr_db(PUBLISHED.read_text()), "debian.or.jp", nameservers=["ns9"])
    assert raised.value.detail == "--nameserver ns9: no such name in the addr file"


def test_import_network_and_as_namespaces(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.harness import write_asn_mmdb

    out = tmp_path / "out"
    result = run_import(str(NETWORKS), "--zone", "cdn.example.org", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (f"{NETWORKS}:10: warning: namespace 'AS2500' is an AS table; it is left out because AS tables need "
            "an ASN database: import again with --asn-database FILE.mmdb") in result.stderr
    assert f"{NETWORKS}:13: warning: namespace nil (left by the addr file's generator)" in result.stderr
    assert (out / "network" / "net-10-1-0-0-16.yaml").read_text() == (
        '# imported from DNS Balance namespace "10.1.0.0/16"\nnetworks: [10.1.0.0/16]\ncdn:\n  m-10-1-0-80: 0\n')
    assert not (out / "asn").exists()
    write_asn_mmdb(tmp_path / "asn.mmdb")
    out2 = tmp_path / "out2"
    result = run_import(str(NETWORKS), "--zone", "cdn.example.org", "--out", str(out2),
                        "--asn-database", str(tmp_path / "asn.mmdb"))
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_config(out2)
    assert set(config.networks) == {"net-10-1-0-0-16"} and set(config.asns) == {2500}
    assert [e.target for e in config.asns[2500].names["cdn"]] == ["m-192-0-2-25"]
    assert config.settings.nameservers[0].name == "ns1.cdn.example.org"


@pytest.mark.parametrize("text,line,message", [
    ('$addr_db = {\n "10.1.0.1/16" => { "cdn" => [ [[1,2,3,4], 0] ] }\n}', 2, "host bits clear"),
    ('$addr_db = {\n "JPN" => {},\n "JP" => { "cdn" => [ [[1,2,3,4], 0] ] }\n}', 3, "same table as 'JPN'"),
])
def test_import_namespace_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ImportProblem) as raised:
        convert(parse_addr_db(text), "debian.or.jp")
    assert raised.value.line == line and message in raised.value.detail


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_import_refuses_what_is_not_a_regular_file_unopened(tmp_path: Path, kind: str) -> None:
    """An addr file named by mistake as a FIFO would have blocked the import, /dev/zero grown it without
    bound: both are refused at once with the file and the reason, and nothing is written."""
    source = tmp_path / "addr"
    if kind == "fifo":
        os.mkfifo(source)
    else:
        source.symlink_to("/dev/zero")
    result = run_import(str(source), "--zone", "debian.or.jp", "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert f"{source}:1: not read: " in result.stderr, result.stderr
    assert ("a FIFO" if kind == "fifo" else "a character device") in result.stderr
    assert not (tmp_path / "out").exists()
