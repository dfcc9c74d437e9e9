"""The stages of answering one query, in order, each one signature: `stage(query) -> bool`, False when the
query's reply (or its silence) is decided and the stages after it do not run. The order is the one list
STAGES at the bottom; pipeline/pipeline.py runs it, with the fast path as a shortcut in front.

A new behaviour is a stage (or a change of one), not an edit of the runtime: the DNSSEC issue fills `sign`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from dnslib import QTYPE, DNSRecord

from dnsbalance.answer.ratelimit import Action
from dnsbalance.answer.respond import error_reply, relative_name, respond
from dnsbalance.answer.tally import Chosen, Tally
from dnsbalance.pipeline.query import Query
from dnsbalance.protocol.codes import TCP_SIZE, OptionCode, Rcode
from dnsbalance.protocol.cookies import MalformedCookie
from dnsbalance.protocol.edns import MalformedOption, read_edns, udp_limit
from dnsbalance.protocol.renderer import header_only, render, truncated
from dnsbalance.stats.counters import client_identity

log = logging.getLogger(__name__)

Stage = Callable[[Query], bool]


def parse(query: Query) -> bool:
    """The packet read (dnslib: the full path takes the odd queries); FORMERR from the header alone when it
    cannot be, silence for responses."""
    try:
        query.message = DNSRecord.parse(query.packet)
    except Exception:  # noqa: BLE001  # dnslib raises more than DNSError on hostile input
        query.pipeline.stats.tally("formerr")
        query.wire = header_only(query.packet, Rcode.FORMERR)
        return False
    return not query.message.header.qr  # answering responses invites loops


def edns_cookie(query: Query) -> bool:
    """The OPT record, read once (a malformed one answers FORMERR at `answer`), and the client's DNS
    cookie checked (RFC 7873): a valid one proves the source address, a malformed one is FORMERR now."""
    message = query.message
    assert message is not None
    try:
        query.edns = edns = read_edns(message, query.packet)
    except MalformedOption:
        query.malformed = True
        return True
    serving = query.serving
    if edns is None or not serving.config.settings.cookies:
        return True
    sent = next((o for o in edns.options if o.code == OptionCode.COOKIE), None)
    if sent is None:
        return True
    stats = query.pipeline.stats
    stats.tally("cookie_received")
    try:
        checked = serving.cookies.check(bytes(sent.data), query.client, int(query.pipeline.clock()))
    except MalformedCookie:
        stats.tally("formerr")
        query.wire = render(error_reply(message, Rcode.FORMERR, edns).message, udp_limit(edns.udp_size)).wire
        return False
    query.cookie, query.proven = checked.option, checked.valid
    if query.proven or len(sent.data) > 8:  # a client cookie alone is neither valid nor invalid
        stats.tally("cookie_valid" if query.proven else "cookie_invalid")
    return True


def rate_limit(query: Query) -> bool:
    """Response rate limiting over UDP: drop, or slip an empty truncated reply. TCP and a valid cookie
    prove the source address, so they are never limited."""
    limiter = query.serving.limiter
    if query.slip or query.tcp or limiter is None or query.proven:
        return True
    action = limiter.check(query.client, query.pipeline.monotonic())
    if action is Action.DROP:
        query.pipeline.stats.tally("rrl_drop")
        return False
    query.slip = action is Action.SLIP
    return True


def locate(query: Query) -> bool:
    """Where the client is: its subnet (when ECS is on and it sent one) or its resolver's address."""
    locator = query.serving.locator
    query.subnet = locator.used_subnet(query.edns)  # once: it both locates and is counted
    query.location, query.scope = locator.locate(query.client, query.subnet)
    return True


def answer(query: Query) -> bool:
    """The reply, a pure function of the question, the location, the table and the random source."""
    message, location = query.message, query.location
    assert message is not None and location is not None
    query.reply = error_reply(message, Rcode.FORMERR) if query.malformed else \
        respond(message, location, query.serving.table, query.pipeline.rng, query.scope, query.cookie,
                edns=query.edns)
    return True


def sign(query: Query) -> bool:
    """DNSSEC (issue 25): nothing to do here. Signatures are made once per table generation by the compiler
    (CompiledTable.sign, in the supervisor's build), and `answer` already placed the presigned RRSIGs and NSECs
    of a DO query next to their RRsets (respond.py looks them up); a query never signs."""
    return True


def count(query: Query) -> bool:
    """What to count: the same Tally the fast path keeps with each prepared reply."""
    message, reply, location = query.message, query.reply, query.location
    assert message is not None and reply is not None and location is not None
    serving, subnet = query.serving, query.subnet
    qtype = str(QTYPE.get(message.questions[0].qtype, "")) if message.questions else ""
    answer = None
    chosen = None
    if reply.pool is not None and reply.chosen:
        name = relative_name(message.questions[0].qname, serving.table.zone.zone) or ""
        answer, chosen = (str(reply.pool.region), name, qtype), Chosen(reply.chosen)
    tally = query.tally = Tally((qtype or "?", reply.rcode.name, location.country or "", location.continent or ""),
                                subnet is not None and subnet.source > 0, answer)
    stats = query.pipeline.stats
    stats.clients.add(client_identity(query.client, subnet))
    stats.count(tally.key, tally.ecs, tally.answer, chosen)
    return True


def pack(query: Query) -> bool:
    """The reply in wire format within the size the transport allows: glue first left out, then TC."""
    reply, edns, stats = query.reply, query.edns, query.pipeline.stats
    assert reply is not None
    if query.slip:
        stats.tally("rrl_slip")
        query.wire = truncated(reply.message)
        return True
    rendered = render(reply.message, TCP_SIZE if query.tcp else udp_limit(edns.udp_size if edns else None))
    query.wire = rendered.wire
    if rendered.truncated:
        stats.tally("truncated")
    return True


# The order of answering, in one place (Knot DNS's knotd_stage_t, CoreDNS's plugin.cfg).
STAGES: tuple[Stage, ...] = (parse, edns_cookie, rate_limit, locate, answer, sign, count, pack)
