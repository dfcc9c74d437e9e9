"""`check` and `explain` state in numbers what min_answers does to the shares, and the answer sets."""
from __future__ import annotations

from pathlib import Path

import pytest

from dnsbalance.cli import main
from tests.harness import FIXTURES
from tests.unbound import resolver_zone


def test_check_prints_delivered_shares_when_the_minimum_bends_them(tmp_path: Path, country_mmdb: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = resolver_zone(tmp_path / "config", country_mmdb, FIXTURES / "zone", answers=4, min_answers=2)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert ("country JP: web A: delivered with at least 2 addresses per answer: jp1: configured 60.0%, "
            "delivered 50.0%; jp2: configured 25.0%, delivered 31.2%; jp3: configured 10.0%, delivered 12.5%; "
            "jp4: configured 5.0%, delivered 6.2%") in out
    assert "country JP: deb A:" not in out  # 9000/6000/3000/1000 fit two addresses exactly


def test_check_is_silent_about_shares_without_a_minimum(tmp_path: Path, country_mmdb: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = resolver_zone(tmp_path / "config", country_mmdb, FIXTURES / "zone", answers=4)
    assert main(["check", "--config", str(config)]) == 0
    assert "delivered" not in capsys.readouterr().out


def test_min_answers_above_answers_is_an_error(tmp_path: Path, country_mmdb: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = resolver_zone(tmp_path / "config", country_mmdb, FIXTURES / "zone", answers=2, min_answers=3)
    assert main(["check", "--config", str(config)]) == 1
    assert "min_answers must be an integer 1..2, got 3" in capsys.readouterr().out


def test_explain_shows_the_answer_sets(tmp_path: Path, country_mmdb: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = resolver_zone(tmp_path / "config", country_mmdb, FIXTURES / "zone", answers=4)
    assert main(["explain", "--config", str(config), "1.0.16.1", "web"]) == 0
    out = capsys.readouterr().out
    assert "answer sets (order shuffled within each): expected size 1.80; 1 address 20.0%, 2 addresses 80.0%" in out
    assert "     20.0%  jp1\n" in out
    assert "cannot hold" not in out
