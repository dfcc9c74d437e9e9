"""Response rate limiting per client prefix, pure apart from the clock the caller passes in.

Like BIND's and Knot's RRL in spirit: a client network past its budget of responses per second gets most
responses dropped, and every `slip`-th one as an empty truncated reply, so a real client behind a spoofed
flood can still retry over TCP while the flood is not amplified.

The buckets live in an anonymous shared memory map made before the answering processes are forked, so
every worker and every table generation sees one budget per prefix: N workers do not give a client N
budgets, and a new table does not forgive a flood. Processes update a bucket without a lock; two updates
at the same instant may lose one (the limit is then a little lenient, never stricter).
"""
from __future__ import annotations

import mmap
import struct
from enum import Enum

from dnsbalance.configuration.model import RRLSettings
from dnsbalance.protocol.addresses import client_address

TABLE_LIMIT = 1 << 16  # prefixes tracked at once; past it, the one seen least recently nearby is forgotten
PROBES = 8  # slots looked at for one prefix: a new prefix takes a free one or the least recently seen
SLOT = struct.Struct("=QddI4x")  # prefix fingerprint (0: free), tokens, time of the last response, limited


class Action(Enum):
    SEND = "send"
    DROP = "drop"
    SLIP = "slip"


class RateLimiter:
    def __init__(self, settings: RRLSettings) -> None:
        self.settings = settings
        self.table = mmap.mmap(-1, TABLE_LIMIT * SLOT.size)  # anonymous and shared with forked processes

    def _prefix(self, client: str) -> tuple[int, int] | None:
        try:
            address = client_address(client)
        except ValueError:
            return None
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        bits = self.settings.ipv4_prefix if address.version == 4 else self.settings.ipv6_prefix
        width = 32 if address.version == 4 else 128
        return address.version, int(address) >> (width - bits)

    def check(self, client: str, now: float) -> Action:
        """A token bucket per prefix: `responses_per_second` tokens a second, bursts of one second's worth."""
        key = self._prefix(client)
        if key is None:
            return Action.SEND
        fingerprint = hash(key) & 0xFFFFFFFFFFFFFFFF or 1  # ints hash alike in every process
        offset = self._slot(fingerprint, now)
        rate = float(self.settings.responses_per_second)
        found, tokens, last, limited = SLOT.unpack_from(self.table, offset)
        if found != fingerprint:
            tokens, last, limited = rate, now, 0
        tokens = min(rate, tokens + max(0.0, now - last) * rate)
        if tokens >= 1.0:
            SLOT.pack_into(self.table, offset, fingerprint, tokens - 1.0, now, 0)
            return Action.SEND
        limited += 1
        SLOT.pack_into(self.table, offset, fingerprint, tokens, now, limited & 0xFFFFFFFF)
        slip = self.settings.slip
        return Action.SLIP if slip and limited % slip == 0 else Action.DROP

    def _slot(self, fingerprint: int, now: float) -> int:
        """The prefix's slot; else a free one; else the least recently seen of the PROBES looked at, so a
        flood of new prefixes evicts quiet clients, never one being limited right now."""
        table, size = self.table, SLOT.size
        start = fingerprint % TABLE_LIMIT
        oldest, oldest_time = -1, now + 1.0
        for probe in range(PROBES):
            offset = (start + probe) % TABLE_LIMIT * size
            found, _, last, _ = SLOT.unpack_from(table, offset)
            if found == fingerprint:
                return offset
            if found == 0:
                return offset
            if last < oldest_time:
                oldest, oldest_time = offset, last
        return oldest
