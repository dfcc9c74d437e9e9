"""The serving snapshot: everything a query reads, built completely off to the side and published by one
assignment (as dnspython's immutable zone versions are). A query reads `balancer.serving` once and uses
that snapshot from its first byte to its last. Nothing in it is closed by hand: a replaced GeoIP reader is
released by the garbage collector when the last snapshot holding it is gone, so never under a query.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from dnsbalance.answer.fastpath import FastPath
from dnsbalance.answer.ratelimit import RateLimiter
from dnsbalance.compiler.table import CompiledTable, compiled
from dnsbalance.configuration.model import Config
from dnsbalance.geo.asn import AsnDatabase
from dnsbalance.geo.locate import GeoIP
from dnsbalance.protocol.cookies import CookieJar
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.build import build_table
from dnsbalance.serving.inputs import TableInputs
from dnsbalance.serving.locator import Locator, network_map


@dataclass(frozen=True)
class Serving:
    """Frozen, and so are its parts (sealed.py): what fills while it serves are its per-generation caches,
    each named as one: the fast path's prepared_cache (replies by query shape), the locator's source_cache
    and subnet_cache, the GeoIP reader's prefix_cache, the table's caches (variants by pool) and the compiled
    table's answer_cache (answer sets in wire format)."""

    inputs: TableInputs
    geoip: GeoIP
    table: ActiveTable
    compiled: CompiledTable
    fast: FastPath
    locator: Locator
    cookies: CookieJar
    limiter: RateLimiter | None
    built_at: float

    @property
    def config(self) -> Config:
        return self.inputs.config


def build_serving(inputs: TableInputs, geoip: GeoIP, previous: Serving | None,
                  asn: AsnDatabase | None = None) -> Serving:
    """A new snapshot. The rate limiter's buckets and the cookie jar carry over while their settings stay,
    so a reload neither forgives a flood nor invalidates the cookies clients hold."""
    settings = inputs.config.settings
    table = build_table(inputs.config, inputs.health.view(), inputs.generation, inputs.serial, inputs.seed,
                        inputs.drained)
    cookies = previous.cookies if previous is not None and previous.cookies.secret == inputs.cookie_secret \
        else CookieJar(inputs.cookie_secret)
    limiter = None
    if settings.rrl.enabled:
        kept = previous.limiter if previous is not None else None
        limiter = kept if kept is not None and kept.settings == settings.rrl else RateLimiter(settings.rrl)
    # The network map depends on the configuration alone: a health cycle keeps the previous one.
    networks = previous.locator.networks if previous is not None and previous.config is inputs.config \
        else network_map(inputs.config)
    wire = compiled(table)
    return Serving(inputs, geoip, table, wire, FastPath(wire, settings.geoip.ecs),
                   Locator(geoip, settings.geoip.ecs, networks, asn), cookies, limiter, time.time())
