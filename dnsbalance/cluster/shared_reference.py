"""The push reference of one archive as every name server holds it, pure: its etcd value, and which of two
references is ahead. The value is moved forward by compare-and-swap only (member.py), so two instances that see
a push at once cannot move it twice, and one that sees it first moves it for all.
"""
from __future__ import annotations

import json

from dnsbalance.health.reference import Reference
from dnsbalance.health.stamp import serial_key

MAX_BYTES = 1024


def encode(reference: Reference) -> bytes:
    return json.dumps({"serial": reference.serial, "previous": reference.previous, "since": reference.since,
                       "master": reference.master, "master_since": reference.master_since},
                      separators=(",", ":"), sort_keys=True).encode()


def parse(data: bytes) -> Reference:
    """ValueError when it is not a reference."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"{len(data)} bytes, more than {MAX_BYTES}")
    raw = json.loads(data)
    if not isinstance(raw, dict):
        raise ValueError("not an object")  # noqa: TRY004 - one error type for every bad value
    texts = [raw.get(k) for k in ("serial", "previous", "master")]
    times = [raw.get(k) for k in ("since", "master_since")]
    if not all(t is None or (isinstance(t, str) and len(t) <= 64) for t in texts) or not texts[0]:
        raise ValueError("serials of the wrong shape")
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times):
        raise ValueError("times of the wrong shape")
    return Reference(texts[0], texts[1], float(times[0]), texts[2], float(times[1]))  # type: ignore[arg-type]


def ahead(mine: Reference | None, shared: Reference | None) -> bool:
    """`mine` has a newer serial than the shared one (or there is none yet)."""
    if mine is None or not mine.serial:
        return False
    return shared is None or not shared.serial or serial_key(mine.serial) > serial_key(shared.serial)
