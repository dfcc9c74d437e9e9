"""The packet half of the server: one query in, one reply out, through the stages of pipeline/stages.py.

A Pipeline holds what answering needs besides the packet and nothing else: where the serving snapshot comes
from, the query counters and the random source (and the clocks, so tests can fix them). The answering
process is forked with a pipeline pinned to one snapshot; the Balancer (configuration, health, reloads)
stays in the supervisor.

The fast path is a shortcut in front of the stages: a common query seen before (answer/fastpath.py) has
parse, EDNS, locate and answer done once, in its prepared reply; a hit then does the rate limit check (when
RRL is on), count and pack, the same as the stages would. The UDP loop (server.py) calls the fast path
itself when RRL is off: one dict lookup and one prepared reply per datagram, nothing in between.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dnsbalance.configuration.model import Config
from dnsbalance.pipeline.query import Query
from dnsbalance.pipeline.stages import STAGES, rate_limit
from dnsbalance.protocol.codes import Rcode
from dnsbalance.protocol.renderer import header_only
from dnsbalance.stats.counters import QueryStats

if TYPE_CHECKING:  # the snapshot is handed in: this layer sits below serving/, which runs it
    from dnsbalance.serving.snapshot import Serving

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, source: Callable[[], Serving], stats: QueryStats, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        """`source`: the snapshot in service now (read once per query, or per batch of datagrams);
        `clock`: wall time, for cookies; `monotonic`: for the rate limiter's buckets."""
        self.source = source
        self.stats = stats
        self.rng = rng or random.Random()  # the query path's draws; tables take their seed from their inputs
        self.clock = clock
        self.monotonic = monotonic

    def pinned(self, serving: Serving) -> Pipeline:
        """This pipeline with one snapshot for good: what an answering process of one generation runs."""
        return Pipeline(lambda: serving, self.stats, self.rng, self.clock, self.monotonic)

    @property
    def config(self) -> Config:
        return self.source().config

    def handle(self, packet: bytes, client: str, tcp: bool, serving: Serving | None = None,
               fast_tried: bool = False) -> bytes | None:
        """One query in, one reply out (None: send nothing). Never raises. `serving`: the snapshot the
        caller already read for this query; `fast_tried`: the caller already asked the fast path (server.py's
        UDP loop), which had no prepared reply."""
        serving = serving or self.source()  # read once: this query sees one snapshot from start to end
        if tcp:
            self.stats.tcp += 1  # UDP is counted by its listener thread (server.py)
        if not fast_tried:
            try:
                prepared = serving.fast.lookup(packet, client, serving.locator.locate, tcp, self.stats)
            except Exception:
                log.exception("fast path failed on a query from %s; trying the full path", client)
                prepared = None
            if prepared is not None:
                if not tcp and serving.limiter is not None:  # the rate limit stage, between lookup and reply
                    query = Query(self, serving, packet, client, tcp)
                    if not rate_limit(query):
                        return None
                    if query.slip:
                        return self.full(serving, packet, client, tcp, slip=True)
                return prepared.reply(packet[:2], self.rng, self.stats)
        return self.full(serving, packet, client, tcp)

    def full(self, serving: Serving, packet: bytes, client: str, tcp: bool, slip: bool = False) -> bytes | None:
        """Every stage in order. `slip`: the rate limiter already chose an empty truncated reply."""
        query = Query(self, serving, packet, client, tcp, slip)
        try:
            for stage in STAGES:
                if not stage(query):
                    break
        except Exception:
            question = query.message.questions[:1] if query.message is not None else "?"
            log.exception("error answering %s from %s; SERVFAIL", question, client)
            return header_only(packet, Rcode.SERVFAIL)
        return query.wire
