"""The running balancer: configuration, GeoIP and the active table, and one packet in -> one packet out.

Sockets live in server.py; the answer logic in answer/respond.py. This joins them: parse, locate, answer, pack.
"""
from __future__ import annotations

import ipaddress
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from dnslib import QTYPE, DNSRecord

from dnsbalance.answer.fastpath import FastPath, subnet_address
from dnsbalance.answer.ratelimit import Action, RateLimiter
from dnsbalance.answer.respond import Reply, error_reply, relative_name, respond
from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.model import Config, health_key
from dnsbalance.configuration.problems import Problem, Severity
from dnsbalance.geo.locate import UNKNOWN, GeoIP, GeoIPError, Location
from dnsbalance.protocol.codes import TCP_SIZE, OptionCode, Rcode
from dnsbalance.protocol.cookies import CookieJar, MalformedCookie
from dnsbalance.protocol.edns import Edns, MalformedOption, read_edns
from dnsbalance.protocol.wire import (
    header_reply,
    pack_truncated,
    pack_within,
    udp_limit,
)
from dnsbalance.ranking.active import ActiveTable
from dnsbalance.ranking.build import build_table, fail_open_names
from dnsbalance.ranking.render import render
from dnsbalance.statefiles import write_atomically
from dnsbalance.stats.counters import QueryStats, client_identity, counter_file
from health import state as health_state
from health.cycle import CycleReport
from health.state import HealthState

LOCATION_CACHE = 1 << 16  # client addresses and subnets remembered per table
HEALTH_FILE = "health.json"
TABLE_FILE = "table.txt"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    config: Config
    geoip: GeoIP
    fingerprint: tuple[tuple[str, int, int], ...]


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, mtime and size of every configuration file: a change is picked up at the next cycle."""
    found = []
    for path in sorted(directory.rglob("*.y*ml")):
        try:
            info = path.stat()
        except OSError:
            continue
        found.append((str(path.relative_to(directory)), info.st_mtime_ns, info.st_size))
    return tuple(found)


def load(directory: Path) -> tuple[Loaded | None, list[Problem]]:
    """Configuration and GeoIP database together, or the problems that stop them loading."""
    stamp = fingerprint(directory)
    config, problems = check_config(directory)
    if config is None:
        return None, problems
    try:
        geoip = GeoIP.open(config.settings.geoip.database, directory)
    except GeoIPError as exc:
        return None, problems + [Problem(directory / "dnsbalance.yaml", 1, str(exc))]
    return Loaded(config, geoip, stamp), problems


class Balancer:
    def __init__(self, loaded: Loaded, rng: random.Random | None = None, persist: bool = False,
                 counters: str | None = None) -> None:
        """`persist`: write the table and health state to the state folder (the probing process does);
        `counters`: the name under which this process keeps its query counters on disk (None: memory)."""
        self.config = loaded.config
        self.geoip = loaded.geoip
        self.fingerprint = loaded.fingerprint
        self.rng = rng or random.Random()
        self.persist = persist
        # A restart remembers which mirrors were down; with no saved state every entry counts as usable.
        self.health: HealthState = health_state.load(self.state_dir / HEALTH_FILE)
        self.generation = 0
        self.last_cycle: CycleReport | None = None
        self.stats = QueryStats(counter_file(self.state_dir, counters) if counters else None)
        self._protocol_settings()
        self.table: ActiveTable = self._build()

    def _protocol_settings(self) -> None:
        settings = self.config.settings
        self.cookies = CookieJar(settings.cookie_secret)
        self.limiter = RateLimiter(settings.rrl) if settings.rrl.enabled else None

    @property
    def state_dir(self) -> Path:
        return self.config.settings.state_dir

    def _build(self) -> ActiveTable:
        self.generation += 1
        now = time.time()
        table = build_table(self.config, self.health.view(), self.generation, serial=int(now),
                            seed=self.rng.getrandbits(64))
        self.fast = FastPath(table, self.config.settings.geoip.ecs, self.stats)
        self.built_at = now
        self._by_source: dict[str, Location] = {}
        self._by_subnet: dict[tuple[int, int, bytes], Location] = {}
        for name in fail_open_names(table):
            log.error("FAIL OPEN: no usable mirror for %s in any table; serving its configured entries", name)
        if self.persist:
            self._write(TABLE_FILE, render(table, now))
        return table

    def _write(self, name: str, text: str) -> None:
        try:
            write_atomically(self.state_dir / name, text)
        except OSError as exc:
            log.warning("cannot write %s to %s: %s", name, self.state_dir, exc)

    def regenerate(self) -> ActiveTable:
        """Build a table from the current configuration and health, and swap it in."""
        self.table = self._build()  # one assignment: queries in flight keep the table they read
        return self.table

    def apply(self, report: CycleReport) -> bool:
        """Take one cycle's verdicts: advance health, regenerate, swap. False when the table was kept.

        If every mirror (or every relay service) failed in the same cycle, the prober is the likely fault:
        those verdicts are set aside and, when nothing else was judged, the previous table stays."""
        self.last_cycle = report
        verdicts = list(report.verdicts)
        for kind in ("mirror", "relay"):
            if report.all_failed(kind):
                log.error("every probed %s failed this cycle: the prober is the likely fault; "
                          "keeping their previous health", kind)
                verdicts = [v for v in verdicts if v.kind != kind]
        if report.verdicts and not verdicts:
            log.error("keeping table generation %d", self.generation)
            return False
        settings = self.config.settings.health
        before = self.health
        known = [*self.config.mirrors, *(health_key(r.name, s) for r in self.config.relays.values()
                                         for s in r.services())]
        self.health = health_state.advance(before, verdicts, settings.fall, settings.rise, report.started, known)
        for name, now in self.health.mirrors.items():
            was = before.mirrors.get(name)
            if (was is None and not now.up) or (was is not None and was.up != now.up):
                log.warning("%s is %s: %s", name, "UP" if now.up else "DOWN", now.reason)
        if self.persist:
            try:
                health_state.save(self.health, self.state_dir / HEALTH_FILE)
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
            return problems
        for problem in problems:
            log.warning("%s", problem)
        old_geoip = self.geoip
        old_rrl, old_secret = self.config.settings.rrl, self.config.settings.cookie_secret
        self.config, self.geoip = loaded.config, loaded.geoip
        self.fingerprint = loaded.fingerprint
        if (self.config.settings.rrl, self.config.settings.cookie_secret) != (old_rrl, old_secret):
            self._protocol_settings()
        self.regenerate()
        old_geoip.close()
        log.info("configuration reloaded from %s (table generation %d)", directory, self.generation)
        return problems

    def refresh(self, directory: Path) -> None:
        """A worker's SIGUSR1: the configuration if it changed, and the health state the supervisor saved."""
        if fingerprint(directory) != self.fingerprint:
            self.reload(directory)
        self.health = health_state.load(self.state_dir / HEALTH_FILE)
        self.regenerate()

    def locate(self, client: str, edns: Edns | None) -> tuple[Location, int | None]:
        """The full path's form of fast_locate, which holds the rules."""
        return self.fast_locate(client, self._used_subnet(edns))

    def _used_subnet(self, edns: Edns | None) -> tuple[int, int, bytes] | None:
        """The client subnet as the fast path reads it (family, source prefix, address octets), if ECS is on."""
        subnet = edns.client_subnet if edns is not None else None
        if subnet is None or not self.config.settings.geoip.ecs:
            return None
        return subnet.family, subnet.source_prefix, subnet.address.packed[: (subnet.source_prefix + 7) // 8]

    def _locate_source(self, client: str) -> Location:
        try:
            return self.geoip.locate(ipaddress.ip_address(client.split("%", 1)[0]))
        except ValueError:
            return UNKNOWN

    def handle(self, packet: bytes, client: str, tcp: bool) -> bytes | None:
        """One query in, one reply out (None: drop). Never raises."""
        try:
            reply = self.fast.answer(packet, client, self.fast_locate, self.rng, tcp)
        except Exception:
            log.exception("fast path failed on a query from %s; trying the full path", client)
            reply = None
        if reply is None:
            return self._full(packet, client, tcp)
        if tcp or self.limiter is None:
            return reply
        action = self.limiter.check(client, time.monotonic())
        if action is Action.SEND:
            return reply
        return None if action is Action.DROP else self._full(packet, client, tcp, slip=True)

    def _count(self, query: DNSRecord, reply: Reply, location: Location, client: str, edns: Edns | None) -> None:
        qtype = QTYPE.get(query.questions[0].qtype, "") if query.questions else ""
        key = (str(qtype) or "?", reply.rcode.name, location.country or "", location.continent or "")
        subnet = self._used_subnet(edns)
        self.stats.query(key, subnet is not None and subnet[1] > 0)
        self.stats.clients.add(client_identity(client, subnet))
        if reply.pool is not None and reply.chosen:
            qname = query.questions[0].qname
            name = relative_name(qname, self.table.zone.zone) or ""
            self.stats.answer((str(reply.pool.region), name, str(qtype)), Chosen(reply.chosen))

    def fast_locate(self, client: str, subnet: tuple[int, int, bytes] | None) -> tuple[Location, int | None]:
        """Where the client is, and the ECS scope to echo when its subnet decided (RFC 7871: a /0 subnet means
        use the resolver's address, scope 0); cached by the client string or the subnet."""
        if subnet is None:
            location = self._by_source.get(client)
            if location is None:
                location = self._remember(self._by_source, client, self._locate_source(client))
            return location, None
        if subnet[1] == 0:  # RFC 7871 7.1.2: the client asked that no subnet be used
            return self.fast_locate(client, None)[0], 0
        location = self._by_subnet.get(subnet)
        if location is None:
            location = self._remember(self._by_subnet, subnet,
                                      self.geoip.locate(subnet_address(subnet[0], subnet[2])))
        return location, location.prefix_len

    @staticmethod
    def _remember(cache: dict, key: object, location: Location) -> Location:  # type: ignore[type-arg]
        if len(cache) >= LOCATION_CACHE:
            cache.clear()
        cache[key] = location
        return location

    def _full(self, packet: bytes, client: str, tcp: bool, slip: bool = False) -> bytes | None:
        """The general path: dnslib parses, respond() answers. `slip`: the rate limiter already chose
        to send this one as an empty truncated reply."""
        try:
            query = DNSRecord.parse(packet)
        except Exception:  # dnslib raises more than DNSError on hostile input
            return header_reply(packet, Rcode.FORMERR)
        try:
            if query.header.qr:
                return None
            table = self.table  # read once: this query sees one table from start to end
            try:
                edns = read_edns(query, packet)
            except MalformedOption:
                edns = None  # respond() answers FORMERR
            cookie, proven = None, False
            if edns is not None and self.config.settings.cookies:
                sent = next((o for o in edns.options if o.code == OptionCode.COOKIE), None)
                if sent is not None:
                    try:
                        checked = self.cookies.check(bytes(sent.data), client, int(time.time()))
                    except MalformedCookie:
                        return pack_within(error_reply(query, Rcode.FORMERR, edns).record, udp_limit(edns))
                    cookie, proven = checked.option, checked.valid
            if not slip and not tcp and self.limiter is not None and not proven:  # a valid cookie proves the source
                action = self.limiter.check(client, time.monotonic())
                if action is Action.DROP:
                    return None
                slip = action is Action.SLIP
            location, scope = self.locate(client, edns)
            reply = respond(query, location, table, self.rng, scope, cookie, packet)
            self._count(query, reply, location, client, edns)
            if slip:
                return pack_truncated(reply.record)
            return pack_within(reply.record, TCP_SIZE if tcp else udp_limit(edns))
        except Exception:
            log.exception("error answering %s from %s; SERVFAIL", query.questions[:1], client)
            return header_reply(packet, Rcode.SERVFAIL)


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
