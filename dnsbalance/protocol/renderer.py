"""The one writer of DNS wire format (as dnspython's renderer.py is): header, question, the three sections,
the OPT record, name compression and truncation. Every reply either path sends is written here, or from
pieces written here (the fast path's headers and OPT; the compiler's records: compiler/).

Name compression follows the one rule the server has always used (dnslib's): every name written with
compression records the offset of each of its suffixes, letter case included, and a later name whose
suffix was recorded points there. SRV targets are written whole (RFC 2782), as is RDATA that was compiled
ahead of time (`Prerendered`: records whose only names are pointers to the question, at offset 12).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from dnsbalance.protocol.codes import AA, DO_BIT, OPCODE_MASK, QR, RD, SERVER_UDP_SIZE, TC, DClass, RType

Name = tuple[bytes, ...]  # labels as they travel, letter case kept; () is the root
HEADER = struct.Struct("!HHHHHH")
RECORD_HEAD = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH
POINTER_LIMIT = 0x4000  # offsets a compression pointer can reach
POINTER_TO_QUESTION = b"\xc0\x0c"  # the question's name always starts at offset 12


def name_of(text: str) -> Name:
    """'cdn.example.org' (no trailing dot; '' for the root) as labels."""
    return tuple(label.encode() for label in text.split(".")) if text else ()


def wire_name(name: str) -> bytes:
    """A name ('cdn.example.org', no trailing dot; '' for the root) in uncompressed wire format."""
    return b"".join(bytes((len(label),)) + label for label in name_of(name)) + b"\x00"


def flags(opcode: int, rd: bool, rcode: int, authoritative: bool) -> int:
    """A reply's flags: QR, the query's opcode, AA when we answer for the zone, RD copied; RA, Z, AD and CD
    clear (gdnsd and Knot answer the same way); the low four bits of the rcode (the rest go in the OPT)."""
    return QR | (opcode << 11 & OPCODE_MASK) | (AA if authoritative else 0) | (RD if rd else 0) | (rcode & 0xF)


@lru_cache(maxsize=1 << 16)
def address_record(rtype: int, address: str, ttl: int) -> bytes:
    """An A or AAAA record whose owner is the question's name: what weighted answers are made of."""
    packed = ipaddress.ip_address(address).packed
    return POINTER_TO_QUESTION + RECORD_HEAD.pack(rtype, DClass.IN, ttl, len(packed)) + packed


def address_rdata(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def header(ident: int, flag_bits: int, qdcount: int, ancount: int, nscount: int, arcount: int) -> bytes:
    return HEADER.pack(ident, flag_bits, qdcount, ancount, nscount, arcount)


def opt_record(ext_rcode: int, do: bool, options: bytes) -> bytes:
    """A reply's OPT record (RFC 6891): root owner, our UDP size, the rcode's high bits, version 0, DO echoed
    (RFC 3225), the options given (each code, length, data)."""
    return struct.pack("!BHHBBHH", 0, RType.OPT, SERVER_UDP_SIZE, ext_rcode, 0, DO_BIT if do else 0,
                       len(options)) + options


def option(code: int, data: bytes) -> bytes:
    return struct.pack("!HH", code, len(data)) + data


def header_only(packet: bytes, rcode: int) -> bytes | None:
    """A bare reply (FORMERR, SERVFAIL) built from the packet's header alone; None when the packet must be
    dropped: shorter than a header, or itself a response (answering responses invites loops)."""
    if len(packet) < HEADER.size:
        return None
    ident, query_flags, _, _, _, _ = HEADER.unpack_from(packet)
    if query_flags & QR:
        return None
    return HEADER.pack(ident, QR | (query_flags & (OPCODE_MASK | RD)) | (rcode & 0xF), 0, 0, 0, 0)


class Compressed(NamedTuple):
    """A name in RDATA that may point to an earlier one (NS, SOA)."""

    name: Name


class Whole(NamedTuple):
    """A name in RDATA written out in full (SRV targets, RFC 2782)."""

    name: Name


RdataPart = bytes | Compressed | Whole


@dataclass(frozen=True)
class Record:
    owner: Name
    rtype: int
    rclass: int
    ttl: int
    rdata: tuple[RdataPart, ...]


@dataclass(frozen=True)
class Prerendered:
    """Records compiled ahead of time (a weighted answer set): written as they are."""

    wire: bytes
    count: int


Entry = Record | Prerendered


@dataclass(frozen=True)
class Question:
    name: Name
    qtype: int
    qclass: int


@dataclass(frozen=True)
class Message:
    """A reply as values. `opt`: (extended rcode, DO, options in wire format) when the query had EDNS."""

    ident: int
    flags: int
    question: Question | None
    answer: tuple[Entry, ...] = ()
    authority: tuple[Entry, ...] = ()
    additional: tuple[Entry, ...] = ()
    opt: tuple[int, bool, bytes] | None = None


class Rendered(NamedTuple):
    wire: bytes
    truncated: bool  # TC set: the reply did not fit


class Writer:
    """One message being written: the bytes so far and where each name suffix already stands."""

    __slots__ = ("names", "out")

    def __init__(self) -> None:
        self.out = bytearray()
        self.names: dict[Name, int] = {}

    def name(self, name: Name, compress: bool = True) -> None:
        out = self.out
        if not compress:
            for label in name:
                out.append(len(label))
                out += label
            out.append(0)
            return
        names = self.names
        for start in range(len(name)):
            suffix = name[start:]
            found = names.get(suffix)
            if found is not None:
                out += struct.pack("!H", 0xC000 | found)
                return
            if len(out) < POINTER_LIMIT:
                names[suffix] = len(out)
            label = name[start]
            out.append(len(label))
            out += label
        out.append(0)

    def entry(self, entry: Entry) -> int:
        """Write one record (or prerendered records); how many records that was."""
        if isinstance(entry, Prerendered):
            self.out += entry.wire
            return entry.count
        self.name(entry.owner)
        out = self.out
        at = len(out)
        out += RECORD_HEAD.pack(entry.rtype, entry.rclass, entry.ttl, 0)
        start = len(out)
        for part in entry.rdata:
            if isinstance(part, bytes):
                out += part
            else:
                self.name(part.name, isinstance(part, Compressed))
        struct.pack_into("!H", out, at + 8, len(out) - start)
        return 1


def _write(message: Message, answer: tuple[Entry, ...], authority: tuple[Entry, ...],
           additional: tuple[Entry, ...], opt: bool, tc: bool) -> bytes:
    writer = Writer()
    writer.out += bytes(HEADER.size)
    question = message.question
    if question is not None:
        writer.name(question.name)
        writer.out += struct.pack("!HH", question.qtype, question.qclass)
    counts = [sum(writer.entry(e) for e in section) for section in (answer, authority, additional)]
    if opt and message.opt is not None:
        writer.out += opt_record(*message.opt)
        counts[2] += 1
    flag_bits = message.flags | (TC if tc else 0)
    struct.pack_into("!HHHHHH", writer.out, 0, message.ident, flag_bits, 1 if question is not None else 0, *counts)
    return bytes(writer.out)


def render(message: Message, limit: int) -> Rendered:
    """The message in at most `limit` octets: whole; else without its additional records (glue is optional,
    RFC 2181 9); else empty with TC set (question and OPT kept), which tells the client to ask over TCP;
    else, for a question too long even for that, header and question cut to the limit."""
    wire = _write(message, message.answer, message.authority, message.additional, True, False)
    if len(wire) <= limit:
        return Rendered(wire, False)
    wire = _write(message, message.answer, message.authority, (), True, False)
    if len(wire) <= limit:
        return Rendered(wire, False)
    wire = truncated(message)
    if len(wire) <= limit:
        return Rendered(wire, True)
    return Rendered(_write(message, (), (), (), False, True)[:limit], True)


def truncated(message: Message) -> bytes:
    """The message emptied, TC set, question and OPT kept: 'ask again over TCP'."""
    return _write(message, (), (), (), True, True)
