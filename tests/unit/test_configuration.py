"""The configuration reader: a key left out means the model's default, and each file is read once."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import Settings, SOASettings, field_defaults

BASE = Path(__file__).resolve().parent.parent / "fixtures" / "check" / "base"


def test_left_out_keys_take_the_model_defaults(tmp_path: Path) -> None:
    shutil.copytree(BASE, tmp_path / "c")
    config, problems = check_config(tmp_path / "c")
    assert config is not None and problems == []
    settings = config.settings
    expected = Settings(zone=settings.zone, nameservers=settings.nameservers,
                        soa=SOASettings(rname="hostmaster.example.org"), state_dir=tmp_path / "c-state")
    assert settings == expected
    assert settings.ttl == field_defaults(Settings)["ttl"]


def test_each_file_is_read_once_and_warnings_keep_their_lines(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "c"
    shutil.copytree(BASE, folder)
    (folder / "country" / "JP.yaml").write_text("deb:\n  beta: 10000\n\nSecurity.:\n  beta: 1\n")
    reads: list[str] = []
    parse = yaml.load

    def counting(text: str, Loader: Any) -> Any:  # noqa: N803 - PyYAML's keyword
        reads.append(text)
        return parse(text, Loader=Loader)

    monkeypatch.setattr(yaml, "load", counting)
    config, problems = check_config(folder)
    assert config is not None
    assert [str(p).replace(str(folder), "{dir}") for p in problems] == [
        "{dir}/country/JP.yaml:1: warning: deb: every entry is drained (priority 10000); the continent AS table "
        "serves these clients",
        "{dir}/country/JP.yaml:4: warning: security: not in default.yaml, so clients of other regions get no answer "
        "for it",
    ]
    assert len(reads) == 5  # one parse per file: the two warnings found their lines without a second read
