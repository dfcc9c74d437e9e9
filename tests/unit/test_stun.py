"""STUN Binding codec, pure: requests, valid replies, and everything a broken relay may send."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnsbalance.health.stun import (
    BINDING_ERROR,
    BINDING_SUCCESS,
    MAGIC_COOKIE,
    XOR_MAPPED_ADDRESS,
    StunError,
    binding_request,
    check_binding_success,
)

TID = bytes(range(12))


def success(tid: bytes, address: str, port: int, extra: bytes = b"") -> bytes:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        body = struct.pack("!BBH", 0, 1, port ^ (MAGIC_COOKIE >> 16)) + \
            (int(ip) ^ MAGIC_COOKIE).to_bytes(4, "big")
    else:
        key = int.from_bytes(MAGIC_COOKIE.to_bytes(4, "big") + tid, "big")
        body = struct.pack("!BBH", 0, 2, port ^ (MAGIC_COOKIE >> 16)) + (int(ip) ^ key).to_bytes(16, "big")
    attrs = extra + struct.pack("!HH", XOR_MAPPED_ADDRESS, len(body)) + body
    return struct.pack("!HHI12s", BINDING_SUCCESS, len(attrs), MAGIC_COOKIE, tid) + attrs


def test_request_layout() -> None:
    request = binding_request(TID)
    assert request == b"\x00\x01\x00\x00\x21\x12\xa4\x42" + TID


@given(address=st.ip_addresses(), port=st.integers(0, 65535), tid=st.binary(min_size=12, max_size=12))
def test_valid_replies_round_trip(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int,
                                  tid: bytes) -> None:
    mapped = check_binding_success(success(tid, str(address), port), tid)
    assert (mapped.address, mapped.port) == (str(address), port)


def test_unknown_attributes_with_padding_are_skipped() -> None:
    software = struct.pack("!HH", 0x8022, 5) + b"abcde\x00\x00\x00"
    assert check_binding_success(success(TID, "127.0.0.1", 5000, software), TID).port == 5000


@pytest.mark.parametrize("reply,message", [
    (b"\x17\x03\x03 not stun", "shorter than a STUN header"),
    (b"\x17\x03\x03 this is not STUN at all", "bad leading bits or magic cookie"),
    (success(bytes(12), "127.0.0.1", 1), "wrong transaction id"),
    (struct.pack("!HHI12s", BINDING_ERROR, 0, MAGIC_COOKIE, TID), "Binding error response"),
    (struct.pack("!HHI12s", 0x0001, 0, MAGIC_COOKIE, TID), "is not a Binding success"),
    (struct.pack("!HHI12s", BINDING_SUCCESS, 0, MAGIC_COOKIE, TID), "without XOR-MAPPED-ADDRESS"),
    (success(TID, "127.0.0.1", 1)[:-2], "length does not match"),
])
def test_broken_replies(reply: bytes, message: str) -> None:
    with pytest.raises(StunError, match=message):
        check_binding_success(reply, TID)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        check_binding_success(data, TID)
    except StunError:
        pass
