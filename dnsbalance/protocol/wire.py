"""The SOA record's fields as a value (the table keeps them; compiler/zone.py makes its RDATA). Everything
else of the wire format is written by protocol/renderer.py."""
from __future__ import annotations

from typing import NamedTuple


class Soa(NamedTuple):
    """The SOA record's fields (RFC 1035 3.3.13), names without the trailing dot."""

    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
