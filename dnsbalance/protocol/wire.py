"""Wire-format edges: names and SOA data in wire form, truncation, and replies to packets dnslib cannot
parse."""
from __future__ import annotations

import struct
from typing import NamedTuple

from dnslib import DNSRecord

from dnsbalance.protocol.codes import OPCODE_MASK, QR, RD, RType

HEADER = struct.Struct("!HHHHHH")


class Soa(NamedTuple):
    """The SOA record's fields (RFC 1035 3.3.13), names without the trailing dot."""

    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


def wire_name(name: str) -> bytes:
    """A name ('cdn.example.org', no trailing dot; '' for the root) in uncompressed wire format."""
    if not name:
        return b"\x00"
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"


def soa_rdata(soa: Soa) -> bytes:
    return wire_name(soa.mname) + wire_name(soa.rname) + struct.pack("!IIIII", soa.serial, soa.refresh,
                                                                      soa.retry, soa.expire, soa.minimum)


def pack_within(reply: DNSRecord, limit: int) -> bytes:
    """Pack the reply in `limit` octets: first without additional data (glue is optional, RFC 2181 9),
    then as a truncated reply (TC, question and OPT only) that tells the client to retry over TCP."""
    data = reply.pack()
    if len(data) <= limit:
        return data
    reply.ar = [rr for rr in reply.ar if rr.rtype == RType.OPT]
    data = reply.pack()
    if len(data) <= limit:
        return data
    data = pack_truncated(reply)
    if len(data) <= limit:
        return data
    reply.ar = []  # a question so long that even the OPT does not fit: header and question
    return reply.pack()[:limit]


def pack_truncated(reply: DNSRecord) -> bytes:
    """An empty reply with TC set (question and OPT kept): 'ask again over TCP'."""
    reply.rr, reply.auth = [], []
    reply.ar = [rr for rr in reply.ar if rr.rtype == RType.OPT]
    reply.header.tc = 1
    return reply.pack()


def header_reply(packet: bytes, rcode: int) -> bytes | None:
    """A bare reply (FORMERR, SERVFAIL) built from the packet's header alone; None when the packet must
    be dropped: shorter than a header, or itself a response (answering responses invites loops)."""
    if len(packet) < HEADER.size:
        return None
    ident, flags, _, _, _, _ = HEADER.unpack_from(packet)
    if flags & QR:
        return None
    reply_flags = QR | (flags & (OPCODE_MASK | RD)) | (rcode & 0xF)  # as in every reply: RD copied, CD not
    return HEADER.pack(ident, reply_flags, 0, 0, 0, 0)
