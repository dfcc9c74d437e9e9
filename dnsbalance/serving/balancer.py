"""The running balancer: it owns what tables are made of (configuration, GeoIP, health, generation),
publishes one serving snapshot at a time, and turns one packet into one reply from the snapshot that is
current when the packet arrives.

Sockets live in server.py; the answer logic in answer/respond.py (full path) and answer/fastpath.py.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path

from dnslib import QTYPE, DNSRecord

from dnsbalance.answer.ratelimit import Action
from dnsbalance.answer.respond import Reply, error_reply, relative_name, respond
from dnsbalance.configuration.model import Config
from dnsbalance.configuration.problems import Problem, Severity
from dnsbalance.geo.locate import GeoIP, Location
from dnsbalance.protocol.codes import TCP_SIZE, OptionCode, Rcode
from dnsbalance.protocol.cookies import MalformedCookie
from dnsbalance.protocol.edns import MalformedOption, Subnet, read_edns, udp_limit
from dnsbalance.protocol.wire import header_reply, pack_truncated, pack_within
from dnsbalance.ranking.active import ActiveTable, PoolLabel, pool_changes
from dnsbalance.ranking.build import fail_open_report
from dnsbalance.ranking.render import render
from dnsbalance.serving import served_copy
from dnsbalance.serving.inputs import Loaded, TableInputs, fingerprint, load
from dnsbalance.serving.snapshot import Serving, build_serving
from dnsbalance.statefiles import StateFolder, write_atomically
from dnsbalance.stats.counters import QueryStats, client_identity
from health import events as health_events
from health import policy
from health import state as health_state
from health.cycle import CycleReport
from health.cycle import report as cycle_report
from health.observations import Observed
from health.settings import policy_settings
from health.state import HealthState

log = logging.getLogger(__name__)


class Balancer:
    def __init__(self, loaded: Loaded, persist: bool = False, counters: str | None = None,
                 health: HealthState | None = None, generation: int = 0, secret: bytes | None = None) -> None:
        """`persist`: write the table and health state to the state folder (the probing process does);
        `counters`: the name under which this process keeps its query counters on disk (None: memory);
        `health`, `generation`, `secret`: given by a supervisor, else read from the state folder, counted
        here and drawn at random."""
        self.loaded = loaded
        self.persist = persist
        self.rng = random.Random()  # the query path's draws; tables take their seed from their inputs
        self.state = StateFolder(loaded.config.settings.state_dir)
        # A restart remembers which mirrors were down; with no saved state every entry counts as usable.
        self.health: HealthState = health if health is not None else health_state.load(self.state.health)
        self.generation = generation
        self.random_secret = secret or os.urandom(32)  # cookies, when the configuration sets no shared secret
        self.last_cycle: CycleReport | None = None
        self.stats = QueryStats(self.state.counters(counters) if counters else None)
        self.pools_changed: dict[PoolLabel, float] = {}  # when each pool's entries or weights last changed
        # Whether each new table has every answer computed before it is published (the supervisor's
        # tables do: answering processes must never compute one under a query).
        self.precompute = False
        self.reloads = {"applied": 0, "refused": 0}  # since start, for /metrics
        self.serving: Serving = self._next(loaded, None)

    # What the rest of the process reads; each is one read of the current snapshot.
    @property
    def config(self) -> Config:
        return self.serving.config

    @property
    def table(self) -> ActiveTable:
        return self.serving.table

    @property
    def geoip(self) -> GeoIP:
        return self.serving.geoip

    @property
    def state_dir(self) -> Path:
        return self.state.root

    @property
    def built_at(self) -> float:
        return self.serving.built_at

    def inputs(self, loaded: Loaded | None = None) -> TableInputs:
        loaded = loaded or self.loaded
        secret = loaded.config.settings.cookie_secret or self.random_secret
        return TableInputs(loaded.config, loaded.digest, loaded.newest, self.health, self.generation, secret,
                           *loaded.database_files())

    def _next(self, loaded: Loaded, previous: Serving | None) -> Serving:
        """Build the next snapshot off to the side; the caller publishes it with one assignment."""
        self.generation += 1
        serving = build_serving(self.inputs(loaded), loaded.geoip, self.stats, previous, loaded.asn)
        if self.precompute:
            fresh = serving.table.precompute(previous.table if previous is not None else None)
            log.debug("table generation %d: %d pools' answers computed", self.generation, fresh)
        self.pools_changed = pool_changes(previous.table if previous else None, serving.table, self.pools_changed,
                                          serving.built_at)
        for name, regions in fail_open_report(serving.table):
            if regions:
                log.warning("default table has no usable entry for %s; clients outside %s get its configured "
                            "entries", name, ", ".join(regions))
            else:
                log.error("FAIL OPEN: no usable mirror for %s in any table; serving its configured entries", name)
        if self.persist:
            self._write(self.state.table, render(serving.table, serving.built_at))
            self._write(self.state.serving, json.dumps({"generation": self.generation,
                                                        "digest": loaded.digest}) + "\n")
            served_copy.save(self.state.served_config, loaded.config.directory, loaded.digest, loaded.files)
        return serving

    def complete(self, deadline: float | None = None) -> int:
        """Compute the answers the table in service still lacks (until `deadline`, time.monotonic());
        from now on every new table comes complete. Returns how many pools were computed."""
        started = time.monotonic()
        fresh = self.serving.table.precompute(deadline=deadline)
        if deadline is None:
            self.precompute = True
            log.info("table generation %d: every pool's answers precomputed (%d now, in %.1fs)", self.generation,
                     fresh, time.monotonic() - started)
        if deadline is None and fresh:
            # a new snapshot with the same contents: the supervisor sees it is not in service and forks
            # answerers that hold every answer (the ones in service compute theirs on first use, privately)
            self.serving = dataclasses.replace(self.serving)
        return fresh

    def _write(self, path: Path, text: str) -> None:
        try:
            write_atomically(path, text)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)

    def regenerate(self) -> ActiveTable:
        """Build a snapshot from the current configuration and health, and publish it."""
        self.serving = self._next(self.loaded, self.serving)  # one assignment: queries in flight keep theirs
        return self.serving.table

    def apply(self, observed: Observed) -> bool:
        """Take one cycle's observations: advance health (health/policy.py decides), log what it decided, persist,
        regenerate and swap. False when the policy kept the table (every target failed: the prober's fault)."""
        config = self.loaded.config
        before = self.health
        step = policy.next_state(before, observed, policy_settings(config), observed.started)
        self.last_cycle = cycle_report(observed, step.judged)
        for record in step.records:
            log_record(record, self.generation)
        if step.kept:
            return False
        self.health = step.state
        if self.persist:
            health_events.record(before, self.health, self.state.events)
            try:
                health_state.save(self.health, self.state.health)
            except OSError as exc:
                log.warning("cannot save health state: %s", exc)
        self.regenerate()
        return True

    def reload(self, directory: Path) -> list[Problem]:
        """Re-read the configuration; on any error keep everything as it is and return the problems."""
        loaded, problems = load(directory)
        if loaded is None:
            for problem in problems:
                log.error("reload refused: %s", problem)
            self.reloads["refused"] += 1
            return problems
        for problem in problems:
            log.warning("%s", problem)
        self.loaded = loaded
        self.state = StateFolder(loaded.config.settings.state_dir)
        self.regenerate()
        self.reloads["applied"] += 1
        return problems

    def changed_on_disk(self, directory: Path) -> bool:
        return fingerprint(directory) != self.loaded.fingerprint

    def handle(self, packet: bytes, client: str, tcp: bool, serving: Serving | None = None) -> bytes | None:
        """One query in, one reply out (None: drop). Never raises. `serving`: the snapshot the caller
        already read for this query."""
        serving = serving or self.serving  # read once: this query sees one snapshot from start to end
        if tcp:
            self.stats.tcp += 1  # UDP is counted by its listener thread (server.py)
        try:
            reply = serving.fast.answer(packet, client, serving.locator.locate, self.rng, tcp)
        except Exception:
            log.exception("fast path failed on a query from %s; trying the full path", client)
            reply = None
        if reply is None:
            return self.full(serving, packet, client, tcp)
        if tcp or serving.limiter is None:
            return reply
        action = serving.limiter.check(client, time.monotonic())
        if action is Action.SEND:
            return reply
        if action is Action.DROP:
            self.stats.tally("rrl_drop")
        return None if action is Action.DROP else self.full(serving, packet, client, tcp, slip=True)

    def _count(self, serving: Serving, query: DNSRecord, reply: Reply, location: Location, client: str,
               subnet: Subnet | None) -> None:
        qtype = str(QTYPE.get(query.questions[0].qtype, "")) if query.questions else ""
        key = (qtype or "?", reply.rcode.name, location.country or "", location.continent or "")
        serving.fast.stats.clients.add(client_identity(client, subnet))
        answer, chosen = None, None
        if reply.pool is not None and reply.chosen:
            name = relative_name(query.questions[0].qname, serving.table.zone.zone) or ""
            answer, chosen = (str(reply.pool.region), name, qtype), Chosen(reply.chosen)
        self.stats.count(key, subnet is not None and subnet.source > 0, answer, chosen)

    def full(self, serving: Serving, packet: bytes, client: str, tcp: bool, slip: bool = False) -> bytes | None:
        """The general path: dnslib parses, respond() answers. `slip`: the rate limiter already chose
        to send this one as an empty truncated reply."""
        try:
            query = DNSRecord.parse(packet)
        except Exception:  # dnslib raises more than DNSError on hostile input
            self.stats.tally("formerr")
            return header_reply(packet, Rcode.FORMERR)
        try:
            if query.header.qr:
                return None
            malformed = False
            try:
                edns = read_edns(query, packet)  # once per query: respond() is handed what was read
            except MalformedOption:
                edns, malformed = None, True
            cookie, proven = None, False
            if edns is not None and serving.config.settings.cookies:
                sent = next((o for o in edns.options if o.code == OptionCode.COOKIE), None)
                if sent is not None:
                    self.stats.tally("cookie_received")
                    try:
                        checked = serving.cookies.check(bytes(sent.data), client, int(time.time()))
                    except MalformedCookie:
                        self.stats.tally("formerr")
                        return pack_within(error_reply(query, Rcode.FORMERR, edns).record, udp_limit(edns.udp_size))
                    cookie, proven = checked.option, checked.valid
                    if proven or len(sent.data) > 8:  # a client cookie alone is neither valid nor invalid
                        self.stats.tally("cookie_valid" if proven else "cookie_invalid")
            limiter = serving.limiter
            if not slip and not tcp and limiter is not None and not proven:  # a valid cookie proves the source
                action = limiter.check(client, time.monotonic())
                if action is Action.DROP:
                    self.stats.tally("rrl_drop")
                    return None
                slip = action is Action.SLIP
            subnet = serving.locator.used_subnet(edns)  # once: it both locates and is counted
            location, scope = serving.locator.locate(client, subnet)
            reply = error_reply(query, Rcode.FORMERR) if malformed else \
                respond(query, location, serving.table, self.rng, scope, cookie, edns=edns)
            self._count(serving, query, reply, location, client, subnet)
            if slip:
                self.stats.tally("rrl_slip")
                return pack_truncated(reply.record)
            packed = pack_within(reply.record, TCP_SIZE if tcp else udp_limit(edns.udp_size if edns else None))
            if packed[2] & 0x02:  # TC: cut to fit
                self.stats.tally("truncated")
            return packed
        except Exception:
            log.exception("error answering %s from %s; SERVFAIL", query.questions[:1], client)
            return header_reply(packet, Rcode.SERVFAIL)


def log_record(record: policy.Record, generation: int) -> None:
    """One of the policy's records in the log, in the words operators (and tests) know."""
    if isinstance(record, policy.ProberSuspected):
        log.error("every probed %s failed this cycle: %s; keeping their previous health", record.kind.value,
                  record.cause)
    elif isinstance(record, policy.TableKept):
        log.error("keeping table generation %d", generation)
    elif isinstance(record, policy.ReferenceMoved):
        log.info("archive %s: reference serial %s%s", record.archive, record.serial,
                 f" (was {record.was}; mirrors on it have {record.grace:g}s of grace)" if record.was else "")
    elif isinstance(record, policy.Transition):
        log.warning("%s is %s: %s", record.key, "UP" if record.up else "DOWN", record.reason)
    elif isinstance(record, policy.UnknownTarget):
        log.warning("%s names %r, which is no mirror, relay or health key of the configuration: ignored",
                    record.observation.source, record.observation.target)


class Chosen:
    """The mirrors of a full-path answer, shaped like a precomputed variant for the counters."""

    __slots__ = ("names",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def __hash__(self) -> int:
        return hash(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chosen) and other.names == self.names


def log_problems(problems: list[Problem]) -> None:
    for problem in problems:
        (log.error if problem.severity is Severity.ERROR else log.warning)("%s", problem)
