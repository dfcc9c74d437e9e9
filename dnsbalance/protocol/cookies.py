"""DNS Cookies (RFC 7873), server side, with the RFC 9018 server-cookie layout.

Server cookie = version 1 | 3 reserved octets | 32-bit timestamp | 8-octet hash of
(client cookie, version, reserved, timestamp, client address) under a secret. RFC 9018 names SipHash-2-4,
which Python's standard library does not expose; HMAC-SHA-256 truncated to 8 octets serves the same purpose
(only servers sharing `cookie_secret` need to agree on it).
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from dnsbalance.protocol.addresses import client_address

CLIENT_LENGTH = 8
VERSION = 1
LIFETIME = 3600  # a server cookie older than this (or from the future by more than 5 minutes) is not valid
CLOCK_SKEW = 300


class MalformedCookie(Exception):
    """RFC 7873 5.2.2: answer FORMERR."""


@dataclass(frozen=True)
class CookieCheck:
    option: bytes  # the option data to send back: client cookie + a fresh server cookie
    valid: bool  # the client presented a server cookie we issued, recently, to this address


def split(data: bytes) -> tuple[bytes, bytes]:
    """(client cookie, server cookie); MalformedCookie unless 8 octets, or 16 to 40."""
    if len(data) != CLIENT_LENGTH and not 16 <= len(data) <= 40:
        raise MalformedCookie(f"cookie option of {len(data)} octets")
    return data[:CLIENT_LENGTH], data[CLIENT_LENGTH:]


class CookieJar:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or os.urandom(32)

    def _server_cookie(self, client_cookie: bytes, client: str, timestamp: int) -> bytes:
        head = bytes([VERSION, 0, 0, 0]) + (timestamp & 0xFFFFFFFF).to_bytes(4, "big")
        address = client_address(client).packed
        digest = hmac.new(self.secret, client_cookie + head + address, hashlib.sha256).digest()[:8]
        return head + digest

    def check(self, data: bytes, client: str, now: int) -> CookieCheck:
        client_cookie, server_cookie = split(data)
        valid = False
        if len(server_cookie) == 16 and server_cookie[0] == VERSION:
            stamp = int.from_bytes(server_cookie[4:8], "big")
            age = (now - stamp) & 0xFFFFFFFF  # serial arithmetic, RFC 1982
            fresh = age <= LIFETIME or (0x100000000 - age) <= CLOCK_SKEW
            valid = fresh and hmac.compare_digest(server_cookie, self._server_cookie(client_cookie, client, stamp))
        return CookieCheck(client_cookie + self._server_cookie(client_cookie, client, now), valid)
