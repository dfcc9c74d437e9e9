"""Response rate limiting per client prefix, pure apart from the clock the caller passes in.

Like BIND's and Knot's RRL in spirit: a client network past its budget of responses per second gets most
responses dropped, and every `slip`-th one as an empty truncated reply, so a real client behind a spoofed
flood can still retry over TCP while the flood is not amplified.
"""
from __future__ import annotations

import ipaddress
from collections import OrderedDict
from enum import Enum

from dnsbalance.configuration.model import RRLSettings

TABLE_LIMIT = 1 << 16  # prefixes tracked at once; past it, the one seen least recently is forgotten


class Action(Enum):
    SEND = "send"
    DROP = "drop"
    SLIP = "slip"


class RateLimiter:
    def __init__(self, settings: RRLSettings) -> None:
        self.settings = settings
        # prefix -> (tokens, time, limited), least recently seen first: a flood of new prefixes evicts the
        # quiet ones, never the client being limited right now
        self._buckets: OrderedDict[tuple[int, int], tuple[float, float, int]] = OrderedDict()

    def _prefix(self, client: str) -> tuple[int, int] | None:
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
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
        rate = float(self.settings.responses_per_second)
        tokens, last, limited = self._buckets.get(key, (rate, now, 0))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._store(key, (tokens - 1.0, now, 0))
            return Action.SEND
        limited += 1
        self._store(key, (tokens, now, limited))
        slip = self.settings.slip
        return Action.SLIP if slip and limited % slip == 0 else Action.DROP

    def _store(self, key: tuple[int, int], value: tuple[float, float, int]) -> None:
        buckets = self._buckets
        if key in buckets:
            buckets.move_to_end(key)
        elif len(buckets) >= TABLE_LIMIT:
            buckets.popitem(last=False)
        buckets[key] = value
