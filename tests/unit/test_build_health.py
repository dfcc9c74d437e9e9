"""Table building from health, pure: mirrors mid-sync avoided within twice their share, pending mirrors."""
from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

from hypothesis import given
from hypothesis import strategies as st

from dnsbalance.configuration.load import load_config
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.codes import RType
from dnsbalance.ranking.active import Candidate
from dnsbalance.ranking.build import avoid_syncing, build_table
from dnsbalance.health.view import HealthView, Status

JP = Location("JP", "AS", 20)
WEIGHTS = {"jp1": 9000, "jp2": 6000, "jp3": 3000, "jp4": 1000}


def pool(config_dir: Path, view: HealthView) -> tuple[dict[str, int], bool]:
    table = build_table(load_config(config_dir), view, 1, 1)
    found = table.pool_for(JP, "deb", RType.A)
    assert found is not None
    return {c.name: c.weight for c in found.candidates}, found.fail_open


def probe_all(config_dir: Path, enabled: bool = True) -> Path:
    """Give every mirror a (never contacted) URL, so each is judged and can be pending."""
    path = config_dir / "mirrors.yaml"
    path.write_text(re.sub(r"\}$", ", url: 'http://127.0.0.1:9/debian/'}", path.read_text(), flags=re.MULTILINE))
    if not enabled:
        with (config_dir / "dnsbalance.yaml").open("a") as handle:
            handle.write("health: {enabled: false}\n")
    return config_dir


def everyone(**overrides: bool) -> dict[str, bool]:
    names = ["jp1", "jp2", "jp3", "jp4", "jpdrained", "as1", "as2", "eu1", "eu2", "de1", "de2", "kr1", "def1",
             "def2", "v6only"]
    return {name: True for name in names} | overrides


def test_syncing_mirrors_are_avoided_while_the_rest_carry_half(config_dir: Path) -> None:
    up = everyone()
    assert pool(config_dir, HealthView(MappingProxyType(up), frozenset({"jp1"}))) == (
        {n: w for n, w in WEIGHTS.items() if n != "jp1"}, False)  # 10000 of 19000 left: jp1 avoided
    # jp1 and jp2 syncing: avoiding both would leave 4000 of 19000 (jp3 at 3.6 times its share): jp2 stays
    assert pool(config_dir, HealthView(MappingProxyType(up), frozenset({"jp1", "jp2"}))) == (
        {n: w for n, w in WEIGHTS.items() if n != "jp1"}, False)
    # every JP mirror mid-sync: the region keeps all of them rather than sending its clients to Asia
    assert pool(config_dir, HealthView(MappingProxyType(up), frozenset(WEIGHTS))) == (WEIGHTS, False)


@given(st.lists(st.tuples(st.integers(1, 10000), st.booleans()), min_size=1, max_size=12))
def test_no_share_more_than_doubles_because_peers_sync(entries: list[tuple[int, bool]]) -> None:
    judged = [(Candidate(f"m{i}", w, ("192.0.2.1",)), Status.SYNCING if s else Status.UP)
              for i, (w, s) in enumerate(entries)]
    kept = avoid_syncing(judged)
    assert kept, "a region never empties because its mirrors sync"
    total, left = sum(w for w, _ in entries), sum(c.weight for c in kept)
    assert 2 * left >= total  # each kept mirror's share is at most twice what it is with every peer serving
    assert all(status is Status.SYNCING for c, status in judged if c not in kept)


def test_pending_mirror_waits_for_its_first_verdict(config_dir: Path) -> None:
    probe_all(config_dir)
    judged = everyone()
    del judged["jp4"]  # e.g. added at reload: the other JP mirrors carry the region until jp4 is judged
    assert pool(config_dir, HealthView(MappingProxyType(judged))) == (
        {n: w for n, w in WEIGHTS.items() if n != "jp4"}, False)
    # nothing judged usable anywhere for the name: the pending mirror serves before anything fails open
    down = {name: False for name in judged}
    assert pool(config_dir, HealthView(MappingProxyType(down))) == ({"jp4": 1000}, False)
    # before the first cycle, everything is pending: every configured entry counts
    assert pool(config_dir, HealthView()) == (WEIGHTS, False)


def test_pending_counts_as_up_when_health_is_off(config_dir: Path) -> None:
    probe_all(config_dir, enabled=False)
    judged = everyone()
    del judged["jp4"]
    assert pool(config_dir, HealthView(MappingProxyType(judged))) == (WEIGHTS, False)
