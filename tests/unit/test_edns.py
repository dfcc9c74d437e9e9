"""EDNS parsing in process: the client subnet option (RFC 7871), option lists and the OPT record (RFC 6891)."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from dnslib import EDNS0, DNSLabel, DNSRecord, EDNSOption
from hypothesis import assume, given
from hypothesis import strategies as st

from dnsbalance.protocol.codes import Family, OptionCode
from dnsbalance.protocol.edns import (
    MalformedOption,
    Subnet,
    opt_rdata,
    parse_client_subnet,
    parse_options,
    read_edns,
)


def ecs(family: int, source: int, scope: int, raw: bytes) -> bytes:
    return struct.pack("!HBB", family, source, scope) + raw


def option(code: int, data: bytes) -> bytes:
    return struct.pack("!HH", code, len(data)) + data


# --- client subnet: valid


def test_ipv4_subnet() -> None:
    subnet = parse_client_subnet(ecs(Family.IPV4, 20, 0, bytes([1, 0, 16])))
    assert subnet == Subnet.of(1, 20, ipaddress.IPv4Address("1.0.16.0"))


def test_ipv6_subnet() -> None:
    subnet = parse_client_subnet(ecs(Family.IPV6, 56, 0, bytes.fromhex("20010200000000")))
    assert subnet == Subnet.of(2, 56, ipaddress.IPv6Address("2001:200::"))


@pytest.mark.parametrize("family", [Family.IPV4, Family.IPV6])
def test_zero_prefix_has_no_address_octets(family: int) -> None:
    subnet = parse_client_subnet(ecs(family, 0, 0, b""))
    assert subnet.source == 0
    assert int(subnet.address) == 0


def test_full_width_prefixes() -> None:
    assert str(parse_client_subnet(ecs(1, 32, 0, bytes([192, 0, 2, 1]))).address) == "192.0.2.1"
    assert str(parse_client_subnet(ecs(2, 128, 0, ipaddress.IPv6Address("2001:db8::1").packed)).address) \
        == "2001:db8::1"


# --- client subnet: malformed


@pytest.mark.parametrize("data, reason", [
    (b"", "shorter than 4"),
    (b"\x00\x01\x18", "shorter than 4"),
    (ecs(0, 0, 0, b""), "family 0"),
    (ecs(3, 8, 0, b"\x01"), "family 3"),
    (ecs(1, 33, 0, bytes(5)), "source prefix 33 exceeds 32"),
    (ecs(2, 129, 0, bytes(17)), "source prefix 129 exceeds 128"),
    (ecs(1, 24, 24, bytes([1, 0, 16])), "scope prefix must be 0"),
    (ecs(1, 24, 0, bytes([1, 0])), "address length"),
    (ecs(1, 24, 0, bytes([1, 0, 16, 0])), "address length"),
    (ecs(1, 0, 0, b"\x00"), "address length"),
    (ecs(1, 20, 0, bytes([1, 0, 17])), "bits set beyond"),  # 0x11: the low nibble is past /20
    (ecs(1, 1, 0, b"\x40"), "bits set beyond"),
    (ecs(2, 33, 0, bytes.fromhex("2001020040")), "bits set beyond"),
])
def test_malformed_subnet(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedOption, match=reason):
        parse_client_subnet(data)


def test_option_caps_the_scope_at_the_address_width() -> None:
    subnet = Subnet.of(1, 24, ipaddress.IPv4Address("1.0.16.0"))
    reply = subnet.option(40)
    assert int.from_bytes(reply[:2], "big") == OptionCode.CLIENT_SUBNET
    assert reply[4:] == ecs(1, 24, 32, bytes([1, 0, 16]))
    assert subnet.option(20)[4:][3] == 20


# --- option lists


def test_option_list() -> None:
    rdata = option(OptionCode.CLIENT_SUBNET, ecs(1, 24, 0, bytes([1, 0, 16]))) + option(OptionCode.COOKIE, bytes(8))
    options = parse_options(rdata)
    assert [(o.code, bytes(o.data)) for o in options] == [
        (8, ecs(1, 24, 0, bytes([1, 0, 16]))), (10, bytes(8))]


def test_empty_option_list() -> None:
    assert parse_options(b"") == ()


def test_trailing_empty_option_is_kept() -> None:
    options = parse_options(option(OptionCode.COOKIE, bytes(8)) + option(OptionCode.NSID, b""))
    assert [(o.code, bytes(o.data)) for o in options] == [(10, bytes(8)), (3, b"")]


def test_only_an_empty_option() -> None:
    assert [(o.code, bytes(o.data)) for o in parse_options(option(OptionCode.NSID, b""))] == [(3, b"")]


@pytest.mark.parametrize("rdata, reason", [
    (b"\x00\x03\x00", "truncated EDNS option header"),
    (option(3, b"") + b"\x00", "truncated EDNS option header"),
    (b"\x00\x0a\x00\x08" + bytes(4), "runs past the OPT record"),
])
def test_malformed_option_list(rdata: bytes, reason: str) -> None:
    with pytest.raises(MalformedOption, match=reason):
        parse_options(rdata)


# --- the OPT record


def query_with(*opts: EDNS0) -> DNSRecord:
    query = DNSRecord.question("deb.cdn.example.org", "A")
    for opt in opts:
        query.add_ar(opt)
    return query


def test_no_opt_record() -> None:
    query = query_with()
    assert read_edns(query) is None
    assert read_edns(query, query.pack()) is None
    assert opt_rdata(query.pack()) is None


def test_opt_record_fields() -> None:
    query = query_with(EDNS0(udp_len=1400, version=0, flags="do", opts=[EDNSOption(OptionCode.COOKIE, bytes(8))]))
    edns = read_edns(query)
    assert edns is not None
    assert (edns.udp_size, edns.version, edns.do) == (1400, 0, True)
    assert [o.code for o in edns.options] == [OptionCode.COOKIE]
    assert edns.client_subnet is None


def test_version_and_no_do() -> None:
    edns = read_edns(query_with(EDNS0(udp_len=512, version=1)))
    assert edns is not None
    assert (edns.udp_size, edns.version, edns.do) == (512, 1, False)


def test_client_subnet_read_from_the_record() -> None:
    data = ecs(1, 20, 0, bytes([1, 0, 16]))
    query = query_with(EDNS0(opts=[EDNSOption(OptionCode.CLIENT_SUBNET, data)]))
    packet = query.pack()
    for edns in (read_edns(query), read_edns(DNSRecord.parse(packet), packet)):
        assert edns is not None
        assert edns.client_subnet == Subnet.of(1, 20, ipaddress.IPv4Address("1.0.16.0"))


def test_trailing_empty_option_read_from_the_wire() -> None:
    query = query_with(EDNS0(opts=[EDNSOption(OptionCode.COOKIE, bytes(8)), EDNSOption(OptionCode.NSID, b"")]))
    packet = query.pack()
    assert opt_rdata(packet) == option(OptionCode.COOKIE, bytes(8)) + option(OptionCode.NSID, b"")
    edns = read_edns(DNSRecord.parse(packet), packet)
    assert edns is not None
    assert [o.code for o in edns.options] == [OptionCode.COOKIE, OptionCode.NSID]


def test_two_client_subnet_options() -> None:
    data = ecs(1, 20, 0, bytes([1, 0, 16]))
    query = query_with(EDNS0(opts=[EDNSOption(OptionCode.CLIENT_SUBNET, data)] * 2))
    with pytest.raises(MalformedOption, match="more than one client subnet"):
        read_edns(query)


def test_malformed_client_subnet_in_the_record() -> None:
    query = query_with(EDNS0(opts=[EDNSOption(OptionCode.CLIENT_SUBNET, ecs(1, 20, 0, bytes([1, 0, 17])))]))
    with pytest.raises(MalformedOption, match="bits set beyond"):
        read_edns(query)


def test_two_opt_records() -> None:
    query = query_with(EDNS0(), EDNS0())
    with pytest.raises(MalformedOption, match="more than one OPT record"):
        read_edns(query)
    packet = query.pack()
    with pytest.raises(MalformedOption, match="more than one OPT record"):
        read_edns(DNSRecord.parse(packet), packet)


def test_opt_owner_not_root() -> None:
    opt = EDNS0()
    opt.rname = DNSLabel("example.org")
    query = query_with(opt)
    with pytest.raises(MalformedOption, match="owner is not the root"):
        read_edns(query)
    packet = query.pack()
    with pytest.raises(MalformedOption, match="owner is not the root"):
        read_edns(DNSRecord.parse(packet), packet)


def test_opt_rdata_skips_other_records() -> None:
    query = query_with(EDNS0(opts=[EDNSOption(OptionCode.NSID, b"")]))
    query.add_answer(*DNSRecord.question("x.example").replyZone("x.example. 60 A 192.0.2.1").rr)
    assert opt_rdata(query.pack()) == option(OptionCode.NSID, b"")


def test_opt_rdata_truncated_message() -> None:
    packet = query_with(EDNS0()).pack()
    with pytest.raises(MalformedOption, match="runs past the end"):
        opt_rdata(packet[:-5])


# --- property: what option() writes, parse_client_subnet reads back


@st.composite
def subnets(draw: st.DrawFn) -> Subnet:
    family = draw(st.sampled_from([Family.IPV4, Family.IPV6]))
    width = 32 if family == Family.IPV4 else 128
    prefix = draw(st.integers(0, width))
    value = draw(st.integers(0, (1 << width) - 1))
    address = ipaddress.IPv4Address(value) if family == Family.IPV4 else ipaddress.IPv6Address(value)
    network = ipaddress.ip_network((address, prefix), strict=False)  # bits beyond the prefix cleared
    return Subnet.of(int(family), prefix, network.network_address)


@given(subnets())
def test_client_subnet_round_trip(subnet: Subnet) -> None:
    data = subnet.option(0)[4:]
    assert len(data) == 4 + (subnet.source + 7) // 8
    back = parse_client_subnet(data)
    assert (back.family, back.source, back.address) == (subnet.family, subnet.source, subnet.address)


@given(subnets(), st.data())
def test_any_bit_beyond_the_prefix_is_refused(subnet: Subnet, data: st.DataObject) -> None:
    spare = (subnet.source + 7) // 8 * 8 - subnet.source  # bits of the last octet past the prefix
    assume(spare > 0)
    bit = data.draw(st.integers(0, spare - 1))
    raw = bytearray(subnet.option(0)[4:][4:])
    raw[-1] |= 1 << bit
    with pytest.raises(MalformedOption, match="bits set beyond"):
        parse_client_subnet(ecs(subnet.family, subnet.source, 0, bytes(raw)))
