"""EDNS(0) pieces the answer needs: the OPT record, and the Client Subnet option (RFC 7871)."""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import NamedTuple

from dnslib import EDNS0, RR, DNSRecord, EDNSOption

from dnsbalance.protocol.codes import DO_BIT, PLAIN_UDP_SIZE, SERVER_UDP_SIZE, Family, OptionCode, RType


class MalformedOption(Exception):
    """An EDNS record or option that RFC 6891 / 7871 say to answer with FORMERR."""


class Subnet(NamedTuple):
    """A client subnet as it travels on the query path: family, source prefix, the address octets sent.
    Hashable, so it keys the location cache."""

    family: int  # Family.IPV4 or Family.IPV6
    source: int
    raw: bytes


def width(family: int) -> int:
    return 32 if family == Family.IPV4 else 128


def subnet_address(family: int, raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    padded = raw.ljust(4 if family == Family.IPV4 else 16, b"\x00")
    return ipaddress.IPv4Address(padded) if family == Family.IPV4 else ipaddress.IPv6Address(padded)


def subnet_option(subnet: Subnet, scope: int) -> bytes:
    """The client subnet option of a reply (code, length and data): the query's subnet echoed with our
    scope (RFC 7871 6), the one encoder of both answer paths."""
    scope = min(scope, width(subnet.family))
    return struct.pack("!HHHBB", OptionCode.CLIENT_SUBNET, 4 + len(subnet.raw), subnet.family, subnet.source,
                       scope) + subnet.raw


def read_subnet_option(options: bytes) -> Subnet | None:
    """OPT RDATA holding exactly one well-formed client subnet option and nothing else, else None (the fast
    path's test: anything else goes to the full parser, which decides FORMERR)."""
    if len(options) < 8 or options[:2] != b"\x00\x08":
        return None
    length = int.from_bytes(options[2:4], "big")
    if 4 + length != len(options):
        return None
    family, source, scope = int.from_bytes(options[4:6], "big"), options[6], options[7]
    raw = options[8:]
    if family not in (Family.IPV4, Family.IPV6) or source > width(family) or scope \
            or len(raw) != (source + 7) // 8:
        return None
    if source % 8 and raw[-1] & (0xFF >> (source % 8)):
        return None  # bits beyond the prefix: FORMERR, which the full path gives
    return Subnet(family, source, raw)


def udp_limit(udp_size: int | None) -> int:
    """The largest UDP reply: 512 without EDNS, else the client's size capped by ours (never below 512)."""
    if udp_size is None:
        return PLAIN_UDP_SIZE
    return max(PLAIN_UDP_SIZE, min(udp_size, SERVER_UDP_SIZE))


def opt_bytes(do: bool, options: bytes) -> bytes:
    """A reply's OPT record in wire format: root owner, our UDP size, version 0, DO echoed (RFC 3225)."""
    return struct.pack("!BHHBBHH", 0, RType.OPT, SERVER_UDP_SIZE, 0, 0, DO_BIT if do else 0, len(options)) + options


@dataclass(frozen=True)
class ClientSubnet:
    family: int  # Family.IPV4 or Family.IPV6
    source_prefix: int
    address: ipaddress.IPv4Address | ipaddress.IPv6Address

    @property
    def subnet(self) -> Subnet:
        return Subnet(self.family, self.source_prefix, self.address.packed[: (self.source_prefix + 7) // 8])

    def to_option(self, scope_prefix: int) -> EDNSOption:
        return EDNSOption(OptionCode.CLIENT_SUBNET, subnet_option(self.subnet, scope_prefix)[4:])


@dataclass(frozen=True)
class Edns:
    """The query's OPT record, read."""

    udp_size: int
    version: int
    do: bool
    options: tuple[EDNSOption, ...]
    client_subnet: ClientSubnet | None


def parse_client_subnet(data: bytes) -> ClientSubnet:
    if len(data) < 4:
        raise MalformedOption("client subnet option shorter than 4 octets")
    family = int.from_bytes(data[:2], "big")
    source, scope = data[2], data[3]
    if family not in (1, 2):
        raise MalformedOption(f"client subnet family {family} is not 1 or 2")
    bits = width(family)
    if source > bits:
        raise MalformedOption(f"client subnet source prefix {source} exceeds {bits}")
    if scope != 0:
        raise MalformedOption("client subnet scope prefix must be 0 in a query")
    raw = data[4:]
    if len(raw) != (source + 7) // 8:
        raise MalformedOption("client subnet address length does not match its source prefix")
    padded = int.from_bytes(raw.ljust(bits // 8, b"\0"), "big")
    if padded & ((1 << (bits - source)) - 1):
        raise MalformedOption("client subnet address has bits set beyond its source prefix")
    address = ipaddress.IPv4Address(padded) if family == 1 else ipaddress.IPv6Address(padded)
    return ClientSubnet(family, source, address)


def _skip_name(packet: bytes, offset: int) -> int:
    while True:
        if offset >= len(packet):
            raise MalformedOption("name runs past the end of the message")
        length = packet[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length & 0xC0:
            raise MalformedOption("reserved label type")
        offset += 1 + length


def opt_rdata(packet: bytes) -> bytes | None:
    """The RDATA of the first OPT record of a wire-format message, or None if it has none."""
    qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", packet, 4)
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(packet, offset) + 4
    for index in range(ancount + nscount + arcount):
        offset = _skip_name(packet, offset)
        if offset + 10 > len(packet):
            raise MalformedOption("record header runs past the end of the message")
        rtype, _, _, rdlength = struct.unpack_from("!HHIH", packet, offset)
        offset += 10
        if rtype == RType.OPT and index >= ancount + nscount:
            return packet[offset : offset + rdlength]
        offset += rdlength
    return None


def parse_options(rdata: bytes) -> tuple[EDNSOption, ...]:
    """OPT RDATA -> options, zero-length ones included (dnslib's own parser drops a trailing empty
    option, such as the NSID request)."""
    options = []
    offset = 0
    while offset < len(rdata):
        if offset + 4 > len(rdata):
            raise MalformedOption("truncated EDNS option header")
        code, length = struct.unpack_from("!HH", rdata, offset)
        if offset + 4 + length > len(rdata):
            raise MalformedOption("EDNS option runs past the OPT record")
        options.append(EDNSOption(code, rdata[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    return tuple(options)


def read_edns(query: DNSRecord, packet: bytes | None = None) -> Edns | None:
    """The query's OPT record, or None; MalformedOption for what RFC 6891 calls FORMERR.
    With the wire `packet`, options are read from it rather than from dnslib's parse."""
    opts = [rr for rr in query.ar if rr.rtype == RType.OPT]
    if not opts:
        return None
    if len(opts) > 1:
        raise MalformedOption("more than one OPT record")
    opt = opts[0]
    if str(opt.rname) not in (".", ""):
        raise MalformedOption("OPT record owner is not the root")
    if packet is not None:
        rdata = opt_rdata(packet)
        options = parse_options(rdata) if rdata is not None else ()
    else:
        options = tuple(o for o in (opt.rdata or []) if isinstance(o, EDNSOption))
    subnet = None
    for option in options:
        if option.code == OptionCode.CLIENT_SUBNET:
            if subnet is not None:
                raise MalformedOption("more than one client subnet option")
            subnet = parse_client_subnet(bytes(option.data))
    ttl = opt.ttl
    return Edns(udp_size=opt.rclass, version=(ttl >> 16) & 0xFF, do=bool(ttl & DO_BIT),
                options=options, client_subnet=subnet)


def opt_record(ext_rcode: int, do: bool, options: list[EDNSOption]) -> RR:
    """The reply's OPT: our UDP size, version 0, the DO bit echoed (RFC 3225), the options given."""
    return EDNS0(udp_len=SERVER_UDP_SIZE, ext_rcode=ext_rcode, flags="do" if do else "", opts=options)
