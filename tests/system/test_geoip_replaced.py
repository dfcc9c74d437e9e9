"""The GeoIP file changed under a running server (issue 14, item 5): truncated or rewritten in place, it must
not take the server down (it was memory-mapped: SIGBUS), and a damaged one is refused on reload."""
from __future__ import annotations

import signal
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from tests.harness import NETWORKS, start_server


def write_big_mmdb(path: Path) -> None:
    """The test networks and 20,000 more, so the file spans many pages: a truncated page is what faults."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for network, (country, continent) in NETWORKS.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": country}, "continent": {"code": continent}})
    for n in range(20_000):
        writer.insert_network(IPSet([f"{20 + n // 256 % 200}.{n % 256}.{n // 51200}.0/24"]),
                              {"country": {"iso_code": "FR"}, "continent": {"code": "EU"}, "n": n})
    writer.to_db_file(str(path))


def test_truncated_and_rewritten_database_does_not_kill_the_server(config_dir: Path, tmp_path: Path) -> None:
    write_big_mmdb(config_dir / "test.mmdb")
    assert (config_dir / "test.mmdb").stat().st_size > 256 << 10
    server = start_server(config_dir, tmp_path / "server.log", ipv6=False)
    try:
        assert server.query("deb.cdn.example.org", subnet="1.0.16.0/24").answer
        database = config_dir / "test.mmdb"
        size = database.stat().st_size
        with database.open("r+b") as handle:  # in place, as `cp new.mmdb test.mmdb` or a crashed download does
            handle.truncate(64)
        for n in range(40):  # new subnets: lookups that walk the database, not the cache
            assert server.query("deb.cdn.example.org", subnet=f"{20 + n}.{n}.0.0/24").answer
        with database.open("r+b") as handle:
            handle.write(b"\xff" * size)
        for n in range(40):
            assert server.query("deb.cdn.example.org", subnet=f"{100 + n}.{n}.0.0/24").answer
        assert server.process.poll() is None
        server.process.send_signal(signal.SIGHUP)  # the damaged file is refused, the one in use stays
        server.wait_for_log(r"reload refused: .*cannot open GeoIP database")
        reply = server.query("deb.cdn.example.org", subnet="1.0.16.0/24")
        assert reply.answer and reply.options[0].scopelen == 20  # still located by the database in use
    finally:
        server.stop()
