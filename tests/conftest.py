"""Fixtures over the harness (tests/harness.py): a GeoIP database, a config folder, the real server on loopback;
and the loopback-only rule, which every test runs under."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from dnsbalance.health.loopback_only import ENV, NETNS_ENV, install
from tests.harness import Server, make_config, start_server, write_mmdb

if TYPE_CHECKING:
    from tests.mirrors import Mirror


# Every process the tests start (servers, `dnsbalance probe`, benches run as tests) and the test process itself
# refuse and record any traffic outside loopback (health/loopback_only.py): a fixture that would probe 192.0.2.x
# fails its test instead of sending a packet.
_REFUSALS = Path(tempfile.mkstemp(prefix="dnsbalance-loopback-only-")[1])
os.environ[ENV] = str(_REFUSALS)
os.environ[NETNS_ENV] = os.readlink("/proc/self/ns/net")
install(str(_REFUSALS), os.environ[NETNS_ENV])


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Fail the test if anything it started tried to reach an address outside loopback."""
    start = _REFUSALS.stat().st_size
    yield
    with _REFUSALS.open("rb") as handle:
        handle.seek(start)
        said = handle.read().decode("utf-8", "replace")
    if said:
        pytest.fail("traffic outside loopback refused (a fixture probes a non-loopback address? give it a "
                    f"127.0.0.x address, or `addresses: false` where health is not the subject):\n{said}",
                    pytrace=False)


@pytest.fixture(scope="session")
def country_mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mmdb(tmp_path_factory.mktemp("geoip") / "test.mmdb")


@pytest.fixture
def config_dir(tmp_path: Path, country_mmdb: Path) -> Path:
    return make_config(tmp_path / "config", country_mmdb)


@pytest.fixture
def server(config_dir: Path, tmp_path: Path) -> Iterator[Server]:
    running = start_server(config_dir, tmp_path / "server.log")
    yield running
    running.stop()


@pytest.fixture
def zone_fleet() -> Iterator[dict[str, "Mirror"]]:
    """A real HTTP mirror on 127.0.0.1 for every mirror of the fixture zone, and the master."""
    from tests.mirrors import Archive, Mirror

    archive = Archive()
    names = ["jp1", "jp2", "jp3", "jp4", "jpdrained", "as1", "as2", "eu1", "eu2", "de1", "de2", "kr1",
             "def1", "def2", "v6only", "master"]
    mirrors = {name: Mirror(archive, "fresh", slow_seconds=5) for name in names}
    yield mirrors
    for mirror in mirrors.values():
        mirror.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, country_mmdb: Path) -> Iterator[Server]:
    """One server for a module of read-only tests."""
    base = tmp_path_factory.mktemp("shared")
    running = start_server(make_config(base / "config", country_mmdb), base / "server.log")
    yield running
    running.stop()
