"""STUN Binding (RFC 5389) messages, pure: build a request, check a reply."""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from dnsbalance.protocol.addresses import host_port

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
XOR_MAPPED_ADDRESS = 0x0020
HEADER = struct.Struct("!HHI12s")


def binding_request(transaction_id: bytes) -> bytes:
    """A Binding request with no attributes: type, length 0, magic cookie, 96-bit transaction id."""
    assert len(transaction_id) == 12
    return HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, transaction_id)


class StunError(Exception):
    """The reply is not a valid Binding success for our request; the text says why."""


@dataclass(frozen=True)
class MappedAddress:
    address: str
    port: int

    def __str__(self) -> str:
        return host_port(self.address, self.port)


def reply_length(header: bytes) -> int:
    """The whole message length announced by a 20-byte header (for stream transports)."""
    return HEADER.size + struct.unpack_from("!H", header, 2)[0]


def check_binding_success(data: bytes, transaction_id: bytes) -> MappedAddress:
    """The XOR-MAPPED-ADDRESS of a Binding success answering `transaction_id`, or StunError."""
    if len(data) < HEADER.size:
        raise StunError(f"reply of {len(data)} bytes is shorter than a STUN header")
    kind, length, cookie, tid = HEADER.unpack_from(data)
    if kind & 0xC000 or cookie != MAGIC_COOKIE:
        raise StunError("reply is not STUN (bad leading bits or magic cookie)")
    if tid != transaction_id:
        raise StunError("reply has a wrong transaction id")
    if kind == BINDING_ERROR:
        raise StunError("Binding error response")
    if kind != BINDING_SUCCESS:
        raise StunError(f"reply type 0x{kind:04x} is not a Binding success")
    if length % 4 or HEADER.size + length != len(data):
        raise StunError("reply length does not match its header")
    offset = HEADER.size
    while offset + 4 <= len(data):
        attr, size = struct.unpack_from("!HH", data, offset)
        value = data[offset + 4 : offset + 4 + size]
        if len(value) != size:
            raise StunError("attribute runs past the end of the reply")
        if attr == XOR_MAPPED_ADDRESS:
            return _xor_mapped(value, transaction_id)
        offset += 4 + size + (-size % 4)  # attributes are padded to 4 bytes
    raise StunError("Binding success without XOR-MAPPED-ADDRESS")


def _xor_mapped(value: bytes, transaction_id: bytes) -> MappedAddress:
    if len(value) < 4:
        raise StunError("XOR-MAPPED-ADDRESS too short")
    family, xport = value[1], struct.unpack_from("!H", value, 2)[0]
    port = xport ^ (MAGIC_COOKIE >> 16)
    raw = value[4:]
    if family == 0x01 and len(raw) == 4:
        return MappedAddress(str(ipaddress.IPv4Address(int.from_bytes(raw, "big") ^ MAGIC_COOKIE)), port)
    if family == 0x02 and len(raw) == 16:
        key = int.from_bytes(MAGIC_COOKIE.to_bytes(4, "big") + transaction_id, "big")
        return MappedAddress(str(ipaddress.IPv6Address(int.from_bytes(raw, "big") ^ key)), port)
    raise StunError("XOR-MAPPED-ADDRESS has a bad family or length")
