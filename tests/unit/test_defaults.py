"""Issue 23's defaults, in process: what apt gets is judged without opting in; an address the prober has no
route to is judged on its mirror's other addresses (and never counts in the all-failed guard); the lock names
mirrors publish are kept in health.json, and `check` warns about those never confirmed."""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import HealthSettings
from dnsbalance.health.checks.ftpsync_lock import NAME as LOCK, LockRead, Named
from dnsbalance.health.checks.served import NAME, ServedCheck, ServedRead, ServedVerdict
from dnsbalance.health.fetch import Fetched
from dnsbalance.health.lock_names import unconfirmed_locks
from dnsbalance.health.observations import Observed
from dnsbalance.health.policy import all_failed, next_state
from dnsbalance.health.served import served_targets
from dnsbalance.health.settings import PolicySettings, policy_settings
from dnsbalance.health.state import HealthState, load, save
from dnsbalance.health.verdict import TargetKind
from tests.mirrors import BASE, trace

NOW = 1_800_000_000.0
HOST = "deb.cdn.example.org"
GOOD = Fetched("u", 200, trace(1, BASE), None, 0.01)
NOT_FOUND = Fetched("u", 404, b"", None, 0.01, "HTTP 404")


def test_what_apt_gets_is_judged_by_default() -> None:
    health = HealthSettings()
    assert health.addresses and health.vhost and health.traces


def read(owner: str, address: str, fetched: Fetched | None) -> ServedRead:
    return ServedRead(f"{owner}@{address}#{HOST}", HOST, address, fetched, owner,
                      "" if fetched else "Network is unreachable")


def judged(*reads: ServedRead) -> tuple[dict[str, ServedVerdict], tuple[str, ...]]:
    observed = Observed(NOW, 0.0, MappingProxyType({NAME: MappingProxyType({r.target: r for r in reads})}))
    result = ServedCheck().judge(observed, PolicySettings(), {}, NOW)
    return {v.name: v for v in result.verdicts if isinstance(v, ServedVerdict)}, result.notes


def test_an_unroutable_address_follows_the_mirrors_other_addresses() -> None:
    found, notes = judged(read("a", "192.0.2.1", GOOD), read("a", "2001:db8::1", None),
                   read("b", "192.0.2.2", NOT_FOUND), read("b", "2001:db8::2", None),
                   read("c", "2001:db8::3", None))
    a6, b6, c6 = found[f"a@2001:db8::1#{HOST}"], found[f"b@2001:db8::2#{HOST}"], found[f"c@2001:db8::3#{HOST}"]
    assert a6.ok and a6.unchecked and a6.reason.endswith(f"served as a@192.0.2.1#{HOST} is")
    assert not b6.ok and b6.unchecked and "out as the mirror's other addresses are (HTTP 404" in b6.reason
    assert c6.ok and c6.reason.endswith("served on the mirror's own verdict")
    assert not found[f"b@192.0.2.2#{HOST}"].unchecked
    (warning,) = notes
    assert warning.startswith("WARNING: no route from the prober to 3 served addresses (IPv6: 2001:db8::1, "
                              "2001:db8::2, 2001:db8::3)")


def test_unchecked_verdicts_do_not_hide_a_prober_that_reaches_nothing() -> None:
    found, _ = judged(read("a", "192.0.2.1", NOT_FOUND), read("a", "2001:db8::1", None),
                      read("c", "2001:db8::3", None))
    verdicts = list(found.values())
    assert any(v.ok for v in verdicts)  # c's, unchecked
    assert all_failed(verdicts, TargetKind.MIRROR)  # every checked one failed


def config_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "dnsbalance.yaml").write_text("zone: cdn.example.org\nnameservers: {ns1.cdn.example.org: [192.0.2.53]}\n")
    (folder / "mirrors.yaml").write_text(
        "mirrors:\n"
        "  learned: {addresses: [192.0.2.1], url: 'http://learned.example.org/debian/'}\n"
        "  guessed: {addresses: [192.0.2.2, '2001:db8::2'], url: 'http://guessed.example.org/debian/'}\n"
        "  said: {addresses: [192.0.2.3], url: 'http://said.example.org/debian/', lock: Archive-Update-in-Progress-x}\n"
        "  quiet: {addresses: [192.0.2.4], url: 'http://quiet.example.org/debian/', lock: off}\n"
        "  static: {addresses: [192.0.2.5]}\n")
    (folder / "default.yaml").write_text("deb:\n  learned: 0\n  guessed: 0\n  said: 0\n  quiet: 0\n  static: 0\n")
    return folder


def test_served_targets_by_default_are_every_address_under_the_balanced_name(tmp_path: Path) -> None:
    config, problems = check_config(config_folder(tmp_path))
    assert config is not None, [str(p) for p in problems]
    assert [t.key for t in served_targets(config) if t.owner == "guessed"] == [
        f"guessed@192.0.2.2#{HOST}", f"guessed@2001:db8::2#{HOST}"]


def test_learned_names_are_kept_and_check_warns_about_the_rest(tmp_path: Path) -> None:
    config, problems = check_config(config_folder(tmp_path))
    assert config is not None, [str(p) for p in problems]
    lock = LockRead("learned", "Archive-Update-in-Progress-ftp.learned", None, Named.LEARNED, "ftp.learned")
    observed = Observed(NOW, 0.0, MappingProxyType({LOCK: MappingProxyType({"learned": lock})}))
    state = next_state(HealthState(), observed, policy_settings(config), NOW).state
    assert dict(state.names) == {"learned": "ftp.learned"}
    save(state, tmp_path / "health.json")
    assert load(tmp_path / "health.json").names == state.names

    said = [str(p) for p in unconfirmed_locks(config, state)]
    assert said == [f"{tmp_path}/config/mirrors.yaml:3: warning: mirror 'guessed': ftpsync lock name never confirmed: "
                    "neither learned from its project/trace/_hierarchy nor set with lock:, so lock detection "
                    "guesses Archive-Update-in-Progress-guessed.example.org; set lock: NAME (ftpsync's MIRRORNAME) "
                    "or lock: off"]
    assert len(unconfirmed_locks(config, HealthState())) == 2  # before any cycle: learned is a guess too


def test_an_unchecked_address_is_not_voted_on() -> None:
    """Several name servers: an instance with no route to an address leaves it to those that reach it."""
    from dnsbalance.cluster.member import observed
    from dnsbalance.health.verdict import Verdict

    mirror = Verdict("a", True, "serial matches master")
    seen = ServedVerdict(f"a@192.0.2.1#{HOST}", True, "serves the stamp")
    unseen = ServedVerdict(f"a@2001:db8::1#{HOST}", True, "unchecked: no route from the prober", unchecked=True)
    assert observed((mirror, seen, unseen)) == (mirror, seen)
