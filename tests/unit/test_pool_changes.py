"""Observed shares 'since the table's last change': the balancer remembers when each pool's entries or
weights last changed, so a new health cycle that changes nothing does not restart the count."""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from dnsbalance.configuration.load import check_config
from dnsbalance.ranking.active import pool_changes
from dnsbalance.ranking.build import build_table
from dnsbalance.health.view import ALL_USABLE, HealthView
from tests.harness import make_config


def test_only_changed_pools_restart(tmp_path: Path, country_mmdb: Path) -> None:
    config, problems = check_config(make_config(tmp_path / "config", country_mmdb))
    assert config is not None, problems
    first = build_table(config, ALL_USABLE, generation=1, serial=1, seed=1)
    since = pool_changes(None, first, {}, 100.0)
    assert since[("country JP", "deb", "A")] == 100.0 and set(since.values()) == {100.0}

    same = build_table(config, ALL_USABLE, generation=2, serial=2, seed=2)  # a cycle that changed nothing
    assert pool_changes(first, same, since, 200.0) == since

    jp1_down = build_table(config, HealthView(MappingProxyType({"jp1": False})), generation=3, serial=3, seed=3)
    later = pool_changes(same, jp1_down, since, 300.0)
    assert later[("country JP", "deb", "A")] == 300.0  # jp1 left the JP pools
    assert later[("country JP", "deb", "AAAA")] == 300.0
    assert later[("default", "deb", "A")] == 100.0  # untouched pools keep their time
