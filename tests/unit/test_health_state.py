"""Hysteresis and table generation from health, pure: (config, health) -> table, failure rules."""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from dnsbalance.configuration.load import load_config
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.build import build_table
from dnsbalance.health.state import HealthState, MirrorHealth, advance, load, save
from dnsbalance.health.verdict import Verdict
from dnsbalance.health.view import HealthView

OK = Verdict("m", True, "fine")
BAD = Verdict("m", False, "HTTP 500")


def run(verdicts: list[Verdict], fall: int, rise: int) -> list[bool]:
    state = HealthState()
    ups = []
    for index, verdict in enumerate(verdicts):
        state = advance(state, [verdict], fall, rise, float(index), ["m"])
        ups.append(state.mirrors["m"].up)
    return ups


def test_first_verdict_is_taken_as_is() -> None:
    assert run([BAD], fall=3, rise=3) == [False]
    assert run([OK], fall=3, rise=3) == [True]


def test_fall_and_rise_counts() -> None:
    assert run([OK, BAD, BAD, OK, BAD, BAD, BAD], fall=2, rise=1) == [True, True, False, True, True, False, False]
    assert run([BAD, OK, OK, BAD, OK, OK, OK], fall=1, rise=3) == [False, False, False, False, False, False, True]


def test_unknown_mirrors_are_forgotten_and_unjudged_kept() -> None:
    state = HealthState(MappingProxyType({"gone": MirrorHealth(False), "kept": MirrorHealth(False)}))
    after = advance(state, [], 1, 1, 0.0, ["kept"])
    assert set(after.mirrors) == {"kept"} and not after.mirrors["kept"].up


def test_state_round_trip_and_corrupt_file(tmp_path: Path) -> None:
    state = advance(HealthState(), [BAD], 1, 1, 5.0, ["m"])
    save(state, tmp_path / "health.json")
    assert load(tmp_path / "health.json") == state
    (tmp_path / "bad.json").write_text("{not json")
    assert load(tmp_path / "bad.json") == HealthState()


JP = Location("JP", "AS", 20)


def view(**usable: bool) -> HealthView:
    return HealthView(MappingProxyType(usable))


def names(config_dir: Path, health: HealthView, location: Location = JP) -> tuple[set[str], bool]:
    table = build_table(load_config(config_dir), health, 1, 1)
    pool = table.pool_for(location, "deb", RType.A)
    assert pool is not None
    return {c.name for c in pool.candidates}, pool.fail_open


def test_unhealthy_entries_leave_the_table(config_dir: Path) -> None:
    assert names(config_dir, view(jp1=False, jp3=False)) == ({"jp2", "jp4"}, False)


def test_country_down_falls_back_to_continent_then_default(config_dir: Path) -> None:
    down = dict(jp1=False, jp2=False, jp3=False, jp4=False)
    assert names(config_dir, view(**down)) == ({"as1", "as2"}, False)
    assert names(config_dir, view(**down, as1=False, as2=False)) == ({"def1", "def2"}, False)


def test_default_down_fails_open_with_configured_entries(config_dir: Path) -> None:
    everything = {m: False for m in load_config(config_dir).mirrors}
    assert names(config_dir, view(**everything)) == ({"def1", "def2"}, True)


def test_operator_state_overrides_health(config_dir: Path) -> None:
    mirrors = config_dir / "mirrors.yaml"
    text = mirrors.read_text().replace("jp1: {addresses: [192.0.2.1, \"2001:db8::1\"]}",
                                       "jp1: {addresses: [192.0.2.1, \"2001:db8::1\"], state: up}")
    text = text.replace("jp2: {addresses: [192.0.2.2, \"2001:db8::2\"]}",
                        "jp2: {addresses: [192.0.2.2, \"2001:db8::2\"], state: down}")
    mirrors.write_text(text)
    assert names(config_dir, view(jp1=False)) == ({"jp1", "jp3", "jp4"}, False)
