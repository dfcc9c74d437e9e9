"""The per-query context every stage reads and writes."""
from __future__ import annotations

from collections.abc import Callable
from random import Random
from typing import TYPE_CHECKING, Protocol

from dnslib import DNSRecord

from dnsbalance.answer.tally import Tally
from dnsbalance.geo.locate import Location
from dnsbalance.protocol.edns import Edns, Subnet

if TYPE_CHECKING:
    from dnsbalance.answer.respond import Reply
    from dnsbalance.serving.snapshot import Serving
    from dnsbalance.stats.counters import QueryStats


class Answering(Protocol):
    """What the stages take from the pipeline that runs them (pipeline.Pipeline): its counters, its random
    draws and its clocks."""

    stats: QueryStats
    rng: Random
    clock: Callable[[], float]
    monotonic: Callable[[], float]


class Query:
    """One query on its way through the stages (pipeline/stages.py). Filled in stage by stage: what the
    packet says, where the client is, the reply, and finally the bytes to send (`wire`; None: send
    nothing)."""

    __slots__ = (
        "client",
        "cookie",
        "edns",
        "location",
        "malformed",
        "message",
        "packet",
        "pipeline",
        "proven",
        "reply",
        "scope",
        "serving",
        "slip",
        "subnet",
        "tally",
        "tcp",
        "wire",
    )

    def __init__(self, pipeline: Answering, serving: Serving, packet: bytes, client: str, tcp: bool,
                 slip: bool = False) -> None:
        self.pipeline = pipeline
        self.serving = serving
        self.packet = packet
        self.client = client
        self.tcp = tcp
        self.slip = slip  # the rate limiter chose to send an empty truncated reply
        self.message: DNSRecord | None = None  # parse
        self.edns: Edns | None = None  # EDNS/cookie: the OPT record as read
        self.malformed = False  # an EDNS option that calls for FORMERR
        self.cookie: bytes | None = None  # the COOKIE option to send back
        self.proven = False  # the client presented a valid server cookie
        self.subnet: Subnet | None = None  # locate: the client subnet used, if any
        self.location: Location | None = None
        self.scope: int | None = None  # the ECS scope to echo
        self.reply: Reply | None = None  # answer
        self.tally: Tally | None = None  # count
        self.wire: bytes | None = None  # pack
