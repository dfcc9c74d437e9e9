"""EDNS(0) as queries carry it: the OPT record read, and the Client Subnet option (RFC 7871). Replies' OPT
records are written by protocol/renderer.py."""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import NamedTuple

from dnslib import DNSRecord, EDNSOption

from dnsbalance.protocol.codes import DO_BIT, PLAIN_UDP_SIZE, SERVER_UDP_SIZE, Family, OptionCode, RType
from dnsbalance.protocol.renderer import option


class MalformedOption(Exception):
    """An EDNS record or option that RFC 6891 / 7871 say to answer with FORMERR."""


class Subnet(NamedTuple):
    """The client subnet of a query (RFC 7871): family, source prefix, the address octets sent. The one form
    it has from the OPT record to the locator, the counters and the reply's echo; hashable, so it keys the
    location cache."""

    family: int  # Family.IPV4 or Family.IPV6
    source: int
    raw: bytes

    @classmethod
    def of(cls, family: int, source: int, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Subnet:
        """The subnet of `source` bits of an address (bits past the prefix must be clear)."""
        return cls(family, source, address.packed[: (source + 7) // 8])

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        padded = self.raw.ljust(4 if self.family == Family.IPV4 else 16, b"\x00")
        return ipaddress.IPv4Address(padded) if self.family == Family.IPV4 else ipaddress.IPv6Address(padded)

    def option(self, scope: int) -> bytes:
        """The option of a reply (code, length and data): the query's subnet echoed with our scope (RFC 7871
        6), the one encoder of both answer paths."""
        scope = min(scope, width(self.family))
        return option(OptionCode.CLIENT_SUBNET, struct.pack("!HBB", self.family, self.source, scope) + self.raw)


def width(family: int) -> int:
    return 32 if family == Family.IPV4 else 128


def parse_client_subnet(data: bytes) -> Subnet:
    """A client subnet option's data, checked as RFC 7871 says a server must (MalformedOption: FORMERR). The
    one reader of both paths: the fast path takes a query whose only option reads here."""
    if len(data) < 4:
        raise MalformedOption("client subnet option shorter than 4 octets")
    family = int.from_bytes(data[:2], "big")
    source, scope = data[2], data[3]
    if family not in (Family.IPV4, Family.IPV6):
        raise MalformedOption(f"client subnet family {family} is not 1 or 2")
    bits = width(family)
    if source > bits:
        raise MalformedOption(f"client subnet source prefix {source} exceeds {bits}")
    if scope != 0:
        raise MalformedOption("client subnet scope prefix must be 0 in a query")
    raw = data[4:]
    if len(raw) != (source + 7) // 8:
        raise MalformedOption("client subnet address length does not match its source prefix")
    if source % 8 and raw[-1] & (0xFF >> (source % 8)):
        raise MalformedOption("client subnet address has bits set beyond its source prefix")
    return Subnet(family, source, bytes(raw))


def only_client_subnet(options: bytes) -> Subnet | None:
    """OPT RDATA holding exactly one well-formed client subnet option and nothing else, else None (the fast
    path's test: anything else goes to the full path, which decides FORMERR)."""
    if len(options) < 8 or options[:2] != b"\x00\x08" or 4 + int.from_bytes(options[2:4], "big") != len(options):
        return None
    try:
        return parse_client_subnet(options[4:])
    except MalformedOption:
        return None


def udp_limit(udp_size: int | None) -> int:
    """The largest UDP reply: 512 without EDNS, else the client's size capped by ours (never below 512)."""
    if udp_size is None:
        return PLAIN_UDP_SIZE
    return max(PLAIN_UDP_SIZE, min(udp_size, SERVER_UDP_SIZE))


@dataclass(frozen=True)
class Edns:
    """The query's OPT record, read."""

    udp_size: int
    version: int
    do: bool
    options: tuple[EDNSOption, ...]
    client_subnet: Subnet | None


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
    for sent in options:
        if sent.code == OptionCode.CLIENT_SUBNET:
            if subnet is not None:
                raise MalformedOption("more than one client subnet option")
            subnet = parse_client_subnet(bytes(sent.data))
    ttl = opt.ttl
    return Edns(udp_size=opt.rclass, version=(ttl >> 16) & 0xFF, do=bool(ttl & DO_BIT),
                options=options, client_subnet=subnet)
