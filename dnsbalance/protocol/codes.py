"""The DNS numbers this server speaks, in one place: record types, classes, opcodes, rcodes, EDNS option
codes, header flags and the sizes the protocol fixes."""
from __future__ import annotations

from enum import IntEnum


class RType(IntEnum):
    A = 1
    NS = 2
    SOA = 6
    TXT = 16
    AAAA = 28
    SRV = 33
    OPT = 41
    RRSIG = 46
    NSEC = 47
    DNSKEY = 48
    CDS = 59
    CDNSKEY = 60
    ANY = 255


# Zone transfers and the obsolete or transaction meta-types: NOTIMP (as gdnsd answers them).
UNSUPPORTED_TYPES = frozenset({249, 250, 251, 252, 253, 254})  # TKEY TSIG IXFR AXFR MAILB MAILA


class DClass(IntEnum):
    IN = 1
    CH = 3
    ANY = 255


class Opcode(IntEnum):
    QUERY = 0


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16  # extended: high bits travel in the OPT record


class OptionCode(IntEnum):
    NSID = 3
    CLIENT_SUBNET = 8
    COOKIE = 10


class Family(IntEnum):
    """Address families of the client subnet option (RFC 7871, IANA address family numbers)."""

    IPV4 = 1
    IPV6 = 2


# Header flag bits (RFC 1035 4.1.1) and the OPT TTL's DO bit (RFC 3225).
QR = 0x8000
OPCODE_MASK = 0x7800
AA = 0x0400
TC = 0x0200
RD = 0x0100
DO_BIT = 0x8000

PLAIN_UDP_SIZE = 512  # RFC 1035 without EDNS
SERVER_UDP_SIZE = 1232  # DNS flag day 2020: no fragmentation on common paths
TCP_SIZE = 65535
