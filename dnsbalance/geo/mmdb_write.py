"""Write a MaxMind DB (.mmdb, format 2.0) from address ranges: what `dnsbalance geoip rebuild` makes the
built-in Country database with, so rebuilding needs no package beyond the reader (maxminddb).

Ranges live in one IPv6 tree; IPv4 ranges sit at ::a.b.c.d (::/96), where readers look IPv4 addresses up.
The tree is built straight from the sorted ranges: a node is split only where its block is not covered by
one range, so it has exactly the nodes the ranges need. Data records are written once each and shared.
Format: https://maxmind.github.io/MaxMind-DB/
"""
from __future__ import annotations

import struct
import time
from bisect import bisect_left
from typing import Any, Mapping, NamedTuple, Sequence

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
IPV4_TOP = 1 << 32  # IPv4 ranges live below this in the IPv6 tree
EMPTY = -1


class Range(NamedTuple):
    first: int  # 128-bit address space; IPv4 as ::a.b.c.d
    last: int
    record: int  # index into the records


def _control(kind: int, size: int) -> bytes:
    """A field's control byte(s): type (extended past 7) and size (longer sizes in following bytes)."""
    extended = b""
    if kind > 7:
        extended, kind = bytes([kind - 7]), 0
    if size < 29:
        return bytes([kind << 5 | size]) + extended
    if size < 285:
        return bytes([kind << 5 | 29]) + extended + bytes([size - 29])
    if size < 65821:
        return bytes([kind << 5 | 30]) + extended + (size - 285).to_bytes(2, "big")
    return bytes([kind << 5 | 31]) + extended + (size - 65821).to_bytes(3, "big")


class Unsigned(NamedTuple):
    """An integer of a given type: the metadata's fields have fixed types (libmaxminddb checks them)."""

    kind: int  # 5 uint16, 6 uint32, 9 uint64
    value: int


def encode(value: Any) -> bytes:
    """One value in the data-section encoding: str, bool, non-negative int, float, list, dict."""
    if isinstance(value, Unsigned):
        data = value.value.to_bytes((value.value.bit_length() + 7) // 8, "big")
        return _control(value.kind, len(data)) + data
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _control(2, len(data)) + data
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative integers are not written")
        data = value.to_bytes((value.bit_length() + 7) // 8, "big")
        kind = 5 if value < 1 << 16 else 6 if value < 1 << 32 else 9 if value < 1 << 64 else 10
        return _control(kind, len(data)) + data
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, (list, tuple)):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _control(7, len(value)) + b"".join(encode(str(k)) + encode(v) for k, v in value.items())
    raise TypeError(f"cannot write {type(value).__name__} into a MaxMind DB")


def _tree(ranges: Sequence[Range]) -> tuple[list[int], list[int], int]:
    """Left and right record of every node (>= 0: a node, EMPTY, or -2 - record index), root first."""
    starts = [r.first for r in ranges]
    left: list[int] = []
    right: list[int] = []

    def node(lo: int, hi: int, base: int, bits: int) -> int:
        if lo >= hi:
            return EMPTY
        if hi - lo == 1 and ranges[lo].first <= base and ranges[lo].last >= base + (1 << bits) - 1:
            return -2 - ranges[lo].record
        index = len(left)
        left.append(EMPTY)
        right.append(EMPTY)
        middle = base + (1 << (bits - 1))
        split = bisect_left(starts, middle, lo, hi)  # ranges[lo:split] start in the lower half
        upper = split - 1 if split > lo and ranges[split - 1].last >= middle else split
        left[index] = node(lo, split, base, bits - 1)
        right[index] = node(upper, hi, middle, bits - 1)
        return index

    root = node(0, len(ranges), 0, 128)
    if root < 0:  # no range, or one covering everything: still a tree of one node
        left, right = [root], [root]
    return left, right, len(left)


def _pack(left: list[int], right: list[int], values: list[int], node_count: int,
          smallest: int = 24) -> tuple[bytes, int]:
    """The search tree section, with the smallest record size (at least `smallest`) that holds every value."""
    def resolve(record: int) -> int:
        return record if record >= 0 else node_count if record == EMPTY else node_count + 16 + values[-2 - record]

    lows = [resolve(r) for r in left]
    highs = [resolve(r) for r in right]
    largest = max(max(lows), max(highs))
    size = next(bits for bits in (24, 28, 32) if bits >= smallest and largest < 1 << bits)
    out = bytearray()
    if size == 24:
        for low, high in zip(lows, highs):
            out += (low << 24 | high).to_bytes(6, "big")
    elif size == 28:
        for low, high in zip(lows, highs):
            out += ((low & 0xFFFFFF) << 32 | (low >> 24) << 28 | high).to_bytes(7, "big")
    else:
        for low, high in zip(lows, highs):
            out += (low << 32 | high).to_bytes(8, "big")
    return bytes(out), size


def merged(ranges: Sequence[Range]) -> list[Range]:
    """Sorted, with neighbours of the same record joined; ValueError where two ranges overlap."""
    out: list[Range] = []
    for item in sorted(ranges):
        if item.first > item.last:
            raise ValueError(f"range {item.first}..{item.last} ends before it starts")
        if out and item.first <= out[-1].last:
            raise ValueError(f"ranges overlap at {item.first}")
        if out and item.first == out[-1].last + 1 and item.record == out[-1].record:
            out[-1] = out[-1]._replace(last=item.last)
        else:
            out.append(item)
    return out


def write_mmdb(ranges: Sequence[Range], records: Sequence[Mapping[str, Any]], database_type: str,
               description: str, build_epoch: int | None = None, record_size: int = 24) -> bytes:
    """The whole database file. `ranges` refer to `records` by index; they must not overlap. `record_size`:
    the smallest to use (24, 28, 32; larger trees take larger ones by themselves)."""
    data = bytearray()
    offsets = []
    for record in records:
        offsets.append(len(data))
        data += encode(dict(record))
    left, right, node_count = _tree(merged(ranges))
    tree, record_size = _pack(left, right, offsets, node_count, record_size)
    metadata = {
        "binary_format_major_version": Unsigned(5, 2), "binary_format_minor_version": Unsigned(5, 0),
        "build_epoch": Unsigned(9, int(time.time()) if build_epoch is None else build_epoch),
        "database_type": database_type, "description": {"en": description}, "ip_version": Unsigned(5, 6),
        "languages": ["en"], "node_count": Unsigned(6, node_count), "record_size": Unsigned(5, record_size),
    }
    return tree + bytes(16) + bytes(data) + METADATA_MARKER + encode(metadata)
