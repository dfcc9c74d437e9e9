"""DNSSEC checked by BIND's `delv` (bind9-dnsutils), a validator apart from unbound: the zone's DS from
`dnsbalance dnssec ds` as its only trust anchor, the server asked directly. Positive answers, a NXDOMAIN and
NODATA (one where the client's region lacks a type another region has) must each be "fully validated"."""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Server, start_server
from tests.signed_zone import dnsbalance, signed_zone
from tests.unbound import ZONE

pytestmark = pytest.mark.skipif(shutil.which("delv") is None, reason="needs delv (bind9-dnsutils)")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    base = tmp_path_factory.mktemp("delv")
    config = signed_zone(base / "config")
    assert dnsbalance("dnssec", "keygen", "--config", str(config)).returncode == 0
    ds = dnsbalance("dnssec", "ds", "--config", str(config)).stdout.split()
    tag, algorithm, digest_type, digest = ds[3], ds[4], ds[5], ds[6]
    anchor = base / "anchor.conf"
    anchor.write_text(f'trust-anchors {{ "{ZONE}." static-ds {tag} {algorithm} {digest_type} "{digest}"; }};\n')
    server = start_server(config, base / "server.log", ipv6=False)
    yield server, anchor
    server.stop()


def delv(server: Server, anchor: Path, name: str, rdtype: str, *options: str) -> str:
    run = subprocess.run(["delv", "@127.0.0.1", "-p", str(server.port), "-a", str(anchor), f"+root={ZONE}",
                          "+nomtrace", *options, name, rdtype],
                         capture_output=True, text=True, timeout=30, check=False)
    return run.stdout + run.stderr


@pytest.mark.parametrize(("name", "rdtype", "expect"), [
    (f"deb.{ZONE}", "A", "IN\tA\t"),
    (f"deb.{ZONE}", "AAAA", "IN\tAAAA\t"),
    (ZONE, "SOA", "IN\tSOA\t"),
    (ZONE, "NS", "IN\tNS\t"),
    (ZONE, "DNSKEY", "IN\tDNSKEY\t"),
    (f"_stun._udp.{ZONE}", "SRV", "IN\tSRV\t"),
    (f"_http._tcp.deb.{ZONE}", "SRV", "IN\tSRV\t"),
    (f"jp1.mirror.deb.{ZONE}", "AAAA", "IN\tAAAA\t"),
    (f"no-such-name.{ZONE}", "A", "NXDOMAIN"),
    (f"x.y.deep.{ZONE}", "AAAA", "NXDOMAIN"),
    (f"deb.{ZONE}", "TXT", "NXRRSET"),  # NODATA
    (f"v4.{ZONE}", "AAAA", "NXRRSET"),  # NODATA where the default region has no AAAA for v4 (JP's has)
])
def test_delv_validates_every_kind_of_answer(signed: tuple[Server, Path], name: str, rdtype: str,
                                             expect: str) -> None:
    server, anchor = signed
    out = delv(server, anchor, name, rdtype)
    if expect.startswith("IN"):
        assert out.startswith("; fully validated\n"), out
        assert expect in out, out
    else:
        assert out.startswith("; negative response, fully validated\n"), out
        assert f";-${expect}" in out, out


def test_delv_rejects_a_wrong_anchor(signed: tuple[Server, Path], tmp_path: Path) -> None:
    """The check has teeth: with another key's DS as the anchor, the same answer does not validate."""
    server, anchor = signed
    text = anchor.read_text()
    digest = text.split('"')[3]
    wrong = tmp_path / "wrong.conf"
    wrong.write_text(text.replace(digest, ("0" if digest[0] != "0" else "1") + digest[1:]))
    out = delv(server, wrong, f"deb.{ZONE}", "A")
    assert "fully validated" not in out, out
