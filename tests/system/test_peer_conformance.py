"""Differential conformance: the same odd queries to dnsbalance and to Knot DNS serving an equivalent
static zone; the reply's shape (rcode, flags, sections, EDNS) must match."""
from __future__ import annotations

import shutil
import subprocess
import time
from typing import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.harness import Server
from tests.relays import free_port

ZONE = """$ORIGIN cdn.example.org.
$TTL 30
@ 3600 IN SOA ns1.cdn.example.org. hostmaster.example.org. 1 3600 600 604800 45
@ 3600 IN NS ns1.cdn.example.org.
@ 3600 IN NS ns.other.example.net.
ns1 3600 IN A 192.0.2.53
ns1 3600 IN AAAA 2001:db8::53
@ IN A 203.0.113.1
deb IN A 203.0.113.1
deb IN A 203.0.113.2
deb IN AAAA 2001:db8:d::1
_sub.deep IN A 203.0.113.2
"""


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    assert shutil.which("knotd"), "knot missing: .ci/run installs it"
    base = tmp_path_factory.mktemp("knot")
    port = free_port()
    (base / "cdn.example.org.zone").write_text(ZONE)
    (base / "knot.conf").write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: {base}
template:
  - id: default
    storage: {base}
    semantic-checks: off
database:
    storage: {base}/db
zone:
  - domain: cdn.example.org
    file: cdn.example.org.zone
log:
  - target: stderr
    any: error
""")
    process = subprocess.Popen(["knotd", "-c", str(base / "knot.conf")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    probe = dns.message.make_query("cdn.example.org", "SOA")
    while True:
        try:
            dns.query.udp(probe, "127.0.0.1", port=port, timeout=0.3)
            break
        except (dns.exception.Timeout, OSError):
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "knotd did not answer"
    yield port
    process.terminate()
    process.wait(10)


def q(name: str = "deb.cdn.example.org", rdtype: str | int = "A", **kw: object) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]


def with_flags(message: dns.message.Message, flags: int) -> dns.message.Message:
    message.flags |= flags
    return message


def with_opcode(message: dns.message.Message, opcode: int) -> dns.message.Message:
    message.set_opcode(opcode)
    return message


CASES = {
    "plain A": lambda: q(use_edns=False),
    "A with EDNS": lambda: q(use_edns=0),
    "AAAA": lambda: q(rdtype="AAAA"),
    "TYPE666": lambda: q(rdtype=666),
    "MX (no such type)": lambda: q(rdtype="MX"),
    "OPT as qtype": lambda: q(rdtype="OPT"),
    "NXDOMAIN": lambda: q("nosuch.cdn.example.org"),
    "empty non-terminal": lambda: q("deep.cdn.example.org"),
    "apex SOA": lambda: q("cdn.example.org", "SOA"),
    "apex NS": lambda: q("cdn.example.org", "NS"),
    "apex A": lambda: q("cdn.example.org", "A"),
    "glue A": lambda: q("ns1.cdn.example.org", "AAAA"),
    "outside the zone": lambda: q("www.example.com"),
    "parent of the zone": lambda: q("example.org", "SOA"),
    "EDNS version 1": lambda: q(use_edns=1),
    "AD CD Z set": lambda: with_flags(q(), dns.flags.AD | dns.flags.CD | 0x0040),
    "RD clear": lambda: q(flags=0),
    "DO bit": lambda: q(use_edns=0, want_dnssec=True),
    "unknown option and EDNS flags": lambda: q(use_edns=0, ednsflags=0x7FFF,
                                               options=[dns.edns.GenericOption(65001, b"\x01")]),
    "opcode STATUS": lambda: with_opcode(q(), dns.opcode.STATUS),
    "opcode 3": lambda: with_opcode(q(), 3),
    "class HS": lambda: q(rdclass=dns.rdataclass.HS),
    "mixed case": lambda: q("DeB.CdN.eXaMpLe.OrG"),
}


def shape(reply: dns.message.Message) -> dict:
    soa_in_authority = any(r.rdtype == dns.rdatatype.SOA for r in reply.authority)
    return {
        "rcode": reply.rcode(), "opcode": reply.opcode(),
        "flags": dns.flags.to_text(reply.flags & ~dns.flags.TC),
        "answer": sorted({(str(r.name), r.rdtype) for r in reply.answer}),
        "soa_in_authority": soa_in_authority,
        "edns": reply.edns, "ednsflags": reply.ednsflags,
        "question": [str(x.name) for x in reply.question],
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_shape_as_knot(shared_server: Server, knot: int, case: str) -> None:
    ours = dns.query.udp(CASES[case](), "127.0.0.1", port=shared_server.port, timeout=3)
    theirs = dns.query.udp(CASES[case](), "127.0.0.1", port=knot, timeout=3)
    assert shape(ours) == shape(theirs)


def test_knot_is_really_answering(knot: int) -> None:
    reply = dns.query.udp(q(), "127.0.0.1", port=knot, timeout=3)
    assert {r.address for r in reply.answer[0]} == {"203.0.113.1", "203.0.113.2"}
