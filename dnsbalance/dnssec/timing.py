"""When signatures are made again, and what `check` says about it (pure: settings, the state the server wrote,
a clock). The supervisor looks every RESIGN_CHECK seconds whether the signatures in service have less than
`refresh` left, and if so builds the table anew, which signs everything with a new window."""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from dnsbalance.configuration.model import Settings

RESIGN_CHECK = 600.0  # seconds between the supervisor's looks at the signatures' expiry


def longest_ttl(settings: Settings) -> int:
    """The longest a resolver keeps a signed RRset of the zone: answers, SOA, NS, DNSKEY (the SOA's TTL)
    and negative answers (RFC 2308: at most the SOA's TTL)."""
    return max(settings.ttl, settings.soa.ttl)


def when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(seconds))


def expiry_warnings(settings: Settings, state: Mapping[str, Any] | None, now: float) -> list[str]:
    """Why signatures could expire before they are made again, one message each; [] when they cannot.
    `state`: the signing state the running server wrote (statefiles' dnssec.json), None if there is none."""
    dnssec = settings.dnssec
    if not dnssec.sign:
        return []
    out = []
    margin = longest_ttl(settings) + RESIGN_CHECK
    if dnssec.refresh < margin:
        out.append(f"dnssec: refresh ({dnssec.refresh} s) is shorter than the longest TTL ({longest_ttl(settings)} s) "
                   f"plus the {RESIGN_CHECK:.0f} s between the server's looks at expiry: a resolver can hold a "
                   f"signature past its expiration before the next refresh (SERVFAIL); make refresh at least "
                   f"{margin:.0f}")
    if state is not None and isinstance(state.get("earliest_expiry"), int | float):
        expiry = float(state["earliest_expiry"])
        if expiry <= now:
            out.append(f"dnssec: the signatures in service (state dnssec.json) expired at {when(expiry)}: validating "
                       f"resolvers fail the zone; start the server, which signs anew as it builds its table")
        elif expiry - now < dnssec.refresh - RESIGN_CHECK:
            out.append(f"dnssec: the signatures in service (state dnssec.json) expire at {when(expiry)}, less than "
                       f"refresh ({dnssec.refresh} s) from now, and were not made again: is the server running? "
                       f"They expire before the next refresh unless it does")
    return out
