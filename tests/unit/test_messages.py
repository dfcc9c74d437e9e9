"""Messages an operator can act on (issue 26 item 9): "did you mean" for misspelt mirrors, keys and region
file names, YAML syntax errors in plain words with their line, GeoIP paths named in full."""
from __future__ import annotations

from pathlib import Path

import pytest

from dnsbalance.configuration.checker import Checker
from dnsbalance.configuration.settings_file import read_settings
from dnsbalance.configuration.suggest import continent_code_for, country_code_for, did_you_mean
from dnsbalance.configuration.yamlpos import YamlSyntaxError, parse_yaml


def test_did_you_mean_names_close_choices_only() -> None:
    assert did_you_mean("osak", ["osaka", "tokyo", "sapporo"]) == " (did you mean 'osaka'?)"
    assert did_you_mean("TOKYO", ["osaka", "tokyo"]) == " (did you mean 'tokyo'?)"
    assert did_you_mean("gamma", ["alpha", "beta"]) == ""  # nothing close: no guess


@pytest.mark.parametrize(("stem", "code"), [("UK", "GB"), ("EL", "GR"), ("japan", "JP"), ("Germany", "DE"),
                                            ("united-kingdom", "GB"), ("Japn", "JP"), ("QQ", None), ("korea", None)])
def test_country_file_names(stem: str, code: str | None) -> None:
    found = country_code_for(stem)
    assert (found[0] if found else None) == code  # 'korea' is two countries: no guess


@pytest.mark.parametrize(("stem", "code"), [("Europe", "EU"), ("EUR", "EU"), ("north-america", "NA"),
                                            ("asia", "AS"), ("XX", None)])
def test_continent_file_names(stem: str, code: str | None) -> None:
    found = continent_code_for(stem)
    assert (found[0] if found else None) == code


@pytest.mark.parametrize(("text", "line", "words"), [
    ("deb:\n  tokyo: 20\n   osaka: 10\n", 3, "line 3 'osaka: 10' is indented more than line 2 'tokyo: 20', which "
                                            "already has a value: indent it like line 2 (2 spaces)"),
    ("deb:\n  tokyo: 20\n osaka: 10\n", 3, "line 3 'osaka: 10' is indented 1 space, which lines up with no key "
                                           "above it (line 2 has 2 spaces, line 1 has 0 spaces)"),
    ("deb\n  tokyo: 20\n", 1, "line 1 'deb' has no ':' after its key, so line 2 cannot be indented under it: "
                              "write 'deb:'"),
    ("deb:\n  tokyo: 20\n  - osaka\n", 3, "line 3 '- osaka' is a list item inside a mapping"),
    ("mirrors:\n  - a\n  b: 1\n", 3, "line 3 'b: 1' is not a list item ('- ...'), but the list that started on "
                                     "line 2 goes on"),
    ("zone: 'cdn.example.org\nttl: 5\n", 1, "the quote opened on line 1 is never closed"),
    ("listen: [\"127.0.0.1:53\"\nttl: 5\n", 1, "the '[' on line 1 is never closed"),
    ("url: http: //x\n", 1, "a value holds ': '"),
    ("a: *x\n", 1, "'*x' refers to an anchor '&x' that is not defined above it"),
])
def test_yaml_errors_in_plain_words(text: str, line: int, words: str) -> None:
    with pytest.raises(YamlSyntaxError) as raised:
        parse_yaml(text.encode())
    assert raised.value.line == line
    assert raised.value.detail.startswith(f"YAML syntax error: {words}"), raised.value.detail
    assert "while parsing" not in raised.value.detail and "expected key" not in raised.value.detail


def test_a_relative_geoip_path_is_named_in_full_and_a_file_beside_the_shell_is_pointed_at(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "dnsbalance.yaml").write_text("zone: cdn.example.org\ngeoip:\n  database: GeoLite2-Country.mmdb\n")
    shell = tmp_path / "home"
    shell.mkdir()
    (shell / "GeoLite2-Country.mmdb").write_bytes(b"")  # where the operator stood when writing the setting
    monkeypatch.chdir(shell)
    check = Checker()
    read_settings(check, Path("../config"))
    (problem,) = [str(p) for p in check.problems if "geoip" in str(p)]
    assert problem == (f"../config/dnsbalance.yaml:3: geoip: database 'GeoLite2-Country.mmdb' does not exist: no file "
                       f"{tmp_path}/config/GeoLite2-Country.mmdb (a relative path is read from the configuration "
                       f"folder, {tmp_path}/config); there is one at {shell}/GeoLite2-Country.mmdb: write that full "
                       "path, or move the file into the folder")
