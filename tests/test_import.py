"""import-dnsbalance: a DNS Balance addr file becomes a configuration with the same numbers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dnsbalance.configuration.load import load_config
from dnsbalance.ops.addrfile import ImportProblem, convert, parse_addr_db
from tests.harness import FIXTURES, ROOT

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
