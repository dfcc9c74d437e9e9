"""Shares at the clients: first addresses behind a real unbound follow the weights (issue 11).

2,000 clients on distinct loopback /24s ask a real unbound (subnetcache: each /24 its own ECS and cache
entry), which asks dnsbalance. The first address each client gets must pass a chi-square test against
the weights, with rrset-roundrobin on (unbound's default) and off, and most answers must still carry a
fallback address.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.chisquare import chi2, chi2_critical
from tests.harness import FIXTURES, Server, start_server
from tests.unbound import Unbound, ask_through, client_addresses, resolver_zone, start_unbound, write_client_mmdb

CLIENTS = 2000
# name -> address -> weight (10000 - priority) in the JP table of tests.unbound.resolver_zone
WEIGHTS = {
    "deb": {"192.0.2.1": 9000, "192.0.2.2": 6000, "192.0.2.3": 3000, "192.0.2.4": 1000},
    "web": {"192.0.2.1": 6000, "192.0.2.2": 2500, "192.0.2.3": 1000, "192.0.2.4": 500},
}
# Answers with two or more addresses the weights allow at best: P(size >= 2) = min(1, 2 (1 - largest share))
FALLBACK_SHARE = {"deb": 1.0, "web": 0.8}

pytestmark = pytest.mark.skipif(shutil.which("unbound") is None and not Path("/usr/sbin/unbound").exists(),
                                reason="needs the unbound package")


@pytest.fixture(scope="module")
def clients() -> list[str]:
    return client_addresses(CLIENTS)


@pytest.fixture(scope="module")
def zone_server(tmp_path_factory: pytest.TempPathFactory, clients: list[str]) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("resolver")
    mmdb = write_client_mmdb(base / "clients.mmdb", clients)
    config = resolver_zone(base / "config", mmdb, FIXTURES / "zone", answers=4)
    running = start_server(config, base / "server.log", ipv6=False)
    yield running
    running.stop()


@pytest.fixture(scope="module", params=[True, False], ids=["roundrobin-yes", "roundrobin-no"])
def unbound(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            zone_server: Server) -> Iterator[Unbound]:
    resolver = start_unbound(tmp_path_factory.mktemp("unbound"), zone_server.port, roundrobin=request.param)
    yield resolver
    resolver.stop()


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_first_addresses_behind_unbound_follow_the_weights(unbound: Unbound, clients: list[str], name: str) -> None:
    weights = WEIGHTS[name]
    observed = ask_through(unbound.port, clients, name)
    df = len(weights) - 1
    statistic = chi2(observed.firsts, weights)
    assert statistic < chi2_critical(df), (statistic, observed.firsts)
    assert chi2(observed.firsts, {k: 1 for k in weights}) > 10 * chi2_critical(df)  # the test has teeth
    assert observed.addresses <= set(weights)  # the drained 192.0.2.5 never
    with_fallback = sum(n for size, n in observed.sizes.items() if size >= 2) / CLIENTS
    assert with_fallback >= 0.5
    assert with_fallback >= FALLBACK_SHARE[name] - 0.05, observed.sizes
    assert max(observed.sizes) <= 4
