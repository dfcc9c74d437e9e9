"""Wire-format edges: size limits and truncation, and replies to packets dnslib cannot parse."""
from __future__ import annotations

import struct

from dnslib import DNSRecord

from dnsbalance.protocol.codes import OPCODE_MASK, PLAIN_UDP_SIZE, QR, RD, SERVER_UDP_SIZE, RType
from dnsbalance.protocol.edns import Edns

HEADER = struct.Struct("!HHHHHH")


def udp_limit(edns: Edns | None) -> int:
    """The largest UDP reply: 512 without EDNS, else the client's size capped by ours (never below 512)."""
    if edns is None:
        return PLAIN_UDP_SIZE
    return max(PLAIN_UDP_SIZE, min(edns.udp_size, SERVER_UDP_SIZE))


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
