"""The serving snapshot is immutable: its parts are set once; only its caches, named as such, fill."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import dns.message
import pytest

from dnsbalance.serving.balancer import Balancer
from dnsbalance.serving.inputs import load
from tests.harness import make_config


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Balancer:
    loaded, problems = load(make_config(tmp_path_factory.mktemp("snapshot") / "config", country_mmdb))
    assert loaded is not None, problems
    return Balancer(loaded)


def test_the_snapshot_and_its_parts_are_set_once(balancer: Balancer) -> None:
    serving = balancer.serving
    with pytest.raises(dataclasses.FrozenInstanceError):
        serving.table = serving.table  # type: ignore[misc]
    for part, attribute in ((serving.fast, "table"), (serving.fast, "prepared_cache"), (serving.locator, "geoip"),
                            (serving.compiled, "zone"), (serving.compiled.zone, "soa_rdata")):
        with pytest.raises(AttributeError, match="set once"):
            setattr(part, attribute, None)
    with pytest.raises(TypeError):
        serving.compiled.zone.glue["x"] = ()  # type: ignore[index]


def test_answering_fills_only_the_caches(balancer: Balancer) -> None:
    serving = balancer.serving
    packet = dns.message.make_query("deb.cdn.example.org", "A").to_wire()
    assert balancer.handle(packet, "1.0.16.5", False, serving) is not None
    assert serving.fast.prepared_cache and serving.locator.source_cache and serving.geoip.prefix_cache
    assert serving.compiled.answer_cache and serving.table.caches.by_pool
