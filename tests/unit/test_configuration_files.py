"""check_config in process on small folders written per test: the model it returns, the problems it names."""
from __future__ import annotations

from pathlib import Path

import pytest

from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import (
    DEFAULT_REGION,
    AdminState,
    Config,
    Entry,
    Level,
    Mirror,
    Region,
)
from dnsbalance.configuration.problems import Problem, Severity

SETTINGS = """\
zone: CDN.Example.org.
nameservers:
  ns1.cdn.example.org: [192.0.2.53, "2001:db8::53"]
soa: {rname: hostmaster.example.org}
"""
MIRRORS = """\
mirrors:
  alpha: {addresses: [192.0.2.1, "2001:db8::1"], url: "http://alpha.example.org/debian"}
  beta: {addresses: [192.0.2.2], state: down}
"""
DEFAULT = """\
deb:
  alpha: 10
  beta: 20
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def folder_with(tmp_path: Path, **changes: str) -> Path:
    """The minimal folder, with files added or replaced (keyword: file name with / as __ and . as _)."""
    files = {"dnsbalance.yaml": SETTINGS, "mirrors.yaml": MIRRORS, "default.yaml": DEFAULT}
    files.update({name.replace("__", "/").replace("_yaml", ".yaml"): text for name, text in changes.items()})
    return write(tmp_path / "config", files)


def load_ok(folder: Path) -> Config:
    config, problems = check_config(folder)
    assert problems == [], [str(p) for p in problems]
    assert config is not None
    return config


def errors(folder: Path) -> list[str]:
    config, problems = check_config(folder)
    assert config is None
    return [str(p) for p in problems if p.severity is Severity.ERROR]


def test_minimal_folder_settings_and_defaults(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    settings = load_ok(folder).settings
    assert settings.zone == "cdn.example.org"  # lower case, no trailing dot
    assert [(ns.name, ns.addresses) for ns in settings.nameservers] == [
        ("ns1.cdn.example.org", ("192.0.2.53", "2001:db8::53"))]
    assert settings.ttl == 60
    assert settings.answers == 4
    assert settings.listen == ("127.0.0.1:20053",)
    assert settings.soa.rname == "hostmaster.example.org"
    assert (settings.soa.refresh, settings.soa.retry, settings.soa.expire, settings.soa.minimum,
            settings.soa.ttl) == (3600, 600, 604800, 60, 3600)
    assert settings.geoip.database == "builtin" and settings.geoip.ecs is True
    assert settings.health.enabled is True and settings.health.interval == 120.0
    assert settings.rrl.enabled is False
    assert settings.state_dir == folder.parent / "config-state"  # beside the folder, not in it
    assert settings.nsid is None
    assert settings.cookies is True
    assert settings.status_listen == "127.0.0.1:8053"


def test_minimal_folder_mirrors_and_table(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    config = load_ok(folder)
    assert dict(config.mirrors) == {
        "alpha": Mirror("alpha", ("192.0.2.1",), ("2001:db8::1",), "http://alpha.example.org/debian/",
                        AdminState.AUTO),
        "beta": Mirror("beta", ("192.0.2.2",), (), None, AdminState.DOWN),
    }
    assert dict(config.relays) == {}
    assert config.default.region == DEFAULT_REGION
    assert config.default.source == folder / "default.yaml"
    assert dict(config.default.names) == {"deb": (Entry("alpha", 10), Entry("beta", 20))}
    assert [e.weight for e in config.default.names["deb"]] == [9990, 9980]
    assert dict(config.countries) == {} and dict(config.continents) == {}
    assert config.tables() == (config.default,)


def test_settings_given(tmp_path: Path) -> None:
    settings = SETTINGS + "ttl: 30\nanswers: 2\nnsid: dnsbalance-1\nlisten: ['127.0.0.1:53', '[::1]:53']\n"
    config = load_ok(folder_with(tmp_path, dnsbalance_yaml=settings))
    assert config.settings.ttl == 30
    assert config.settings.answers == 2
    assert config.settings.nsid == b"dnsbalance-1"
    assert config.settings.listen == ("127.0.0.1:53", "[::1]:53")


def test_region_tables(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, country__DEU_yaml="deb:\n  alpha: 0\n", continent__as_yaml="DEB:\n  beta: 5\n")
    config = load_ok(folder)
    assert set(config.countries) == {"DE"}  # alpha-3 file name, alpha-2 code
    assert config.countries["DE"].region == Region(Level.COUNTRY, "DE")
    assert dict(config.countries["DE"].names) == {"deb": (Entry("alpha", 0),)}
    assert set(config.continents) == {"AS"}
    assert dict(config.continents["AS"].names) == {"deb": (Entry("beta", 5),)}  # names are not case-sensitive
    assert len(config.tables()) == 3


def test_unknown_mirror_names_file_and_line(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, default_yaml="deb:\n  alpha: 10\n  gamma: 20\n")
    config, problems = check_config(folder)
    assert config is None
    assert len(problems) == 1
    problem = problems[0]
    assert isinstance(problem, Problem)
    assert problem.severity is Severity.ERROR
    assert (problem.path, problem.line) == (folder / "default.yaml", 3)
    assert str(problem).startswith(f"{folder / 'default.yaml'}:3: ")
    assert "unknown mirror 'gamma'" in str(problem)


def test_every_problem_is_collected(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        default_yaml="deb:\n  alpha: 10001\n",
        country__JP_yaml="deb:\n  nobody: 1\n",
        mirrors_yaml="mirrors:\n  alpha: {addresses: [192.0.2.1]}\n  bad: {addresses: [192.0.2.300]}\n",
    )
    found = errors(folder)
    assert len(found) == 3, found
    assert any(p.startswith(f"{folder / 'default.yaml'}:2: ") and "10001" in p for p in found)
    assert any(p.startswith(f"{folder / 'country' / 'JP.yaml'}:2: ") and "'nobody'" in p for p in found)
    assert any(p.startswith(f"{folder / 'mirrors.yaml'}:3: ") and "192.0.2.300" in p for p in found)


def test_country_defined_twice(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, country__JP_yaml="deb:\n  alpha: 0\n", country__JPN_yaml="deb:\n  beta: 0\n")
    found = errors(folder)
    assert len(found) == 1, found
    assert "country JP is defined twice" in found[0]


def test_missing_default(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    (folder / "default.yaml").unlink()
    found = errors(folder)
    assert any(p.startswith(str(folder / "default.yaml")) for p in found), found


def test_uncovered_name_is_a_warning(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, country__JP_yaml="deb:\n  alpha: 0\nsecurity:\n  beta: 0\n")
    config, problems = check_config(folder)
    assert config is not None  # warnings do not stop loading
    assert [(p.severity, p.path, p.line) for p in problems] == [(Severity.WARNING, folder / "country" / "JP.yaml", 3)]
    assert str(problems[0]).startswith(f"{folder / 'country' / 'JP.yaml'}:3: warning: security")


def test_missing_folder(tmp_path: Path) -> None:
    config, problems = check_config(tmp_path / "nowhere")
    assert config is None
    assert [str(p) for p in problems] == [f"{tmp_path / 'nowhere'}:1: configuration folder does not exist"]


@pytest.mark.parametrize("answers", ["0", "33", "four"])
def test_answers_out_of_range(tmp_path: Path, answers: str) -> None:
    found = errors(folder_with(tmp_path, dnsbalance_yaml=SETTINGS + f"answers: {answers}\n"))
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'config' / 'dnsbalance.yaml'}:5: ")


@pytest.mark.parametrize("depth", [65, 999, 1000, 30_000])
def test_nesting_refused_in_the_projects_words_whichever_limit_trips(tmp_path: Path, depth: int) -> None:
    """Our 64-level limit and libyaml's own (1,000 in PyYAML 6.0.4's wheels, which then raises first) give
    one wording with the line: the library's words must not leak out, nor depend on its release."""
    from dnsbalance.configuration.yamlpos import YamlSyntaxError, load_yaml

    path = tmp_path / "JP.yaml"
    path.write_text("deb:\n  jp1: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(YamlSyntaxError) as raised:
        load_yaml(path)
    assert (raised.value.line, raised.value.detail) == (2, "nested more than 64 levels deep")
