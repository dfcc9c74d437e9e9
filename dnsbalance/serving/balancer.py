"""The running balancer: it owns what tables are made of (configuration, GeoIP, health, generation),
publishes one serving snapshot at a time, and turns one packet into one reply from the snapshot that is
current when the packet arrives.

Sockets live in server.py; answering in pipeline/ (its stages, the fast path in front), over answer/.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path

from dnsbalance import drains as operator_drains
from dnsbalance.answer import native
from dnsbalance.cluster.view import ClusterView
from dnsbalance.configuration.model import Config
from dnsbalance.configuration.problems import Problem, Severity
from dnsbalance.dnssec import key_folder
from dnsbalance.dnssec.key_files import describe, key_set
from dnsbalance.dnssec.keys import KEY_FILE, KeyProblem, KeySet, load_keys
from dnsbalance.dnssec.signer import Signer, window_at
from dnsbalance.geo.locate import GeoIP
from dnsbalance.health import events as health_events
from dnsbalance.health import policy
from dnsbalance.health import state as health_state
from dnsbalance.health.cycle import CycleReport
from dnsbalance.health.cycle import report as cycle_report
from dnsbalance.health.observations import External, Observed
from dnsbalance.health.settings import policy_settings
from dnsbalance.health.state import HealthState
from dnsbalance.pipeline.pipeline import Pipeline
from dnsbalance.ranking.active import ActiveTable, PoolLabel, pool_changes
from dnsbalance.ranking.build import fail_open_report
from dnsbalance.ranking.render import render
from dnsbalance.serving import served_copy
from dnsbalance.serving.collector import collector_paused
from dnsbalance.serving.inputs import Loaded, TableInputs, fingerprint, load
from dnsbalance.serving.snapshot import Serving, build_serving
from dnsbalance.statefiles import StateFolder, write_atomically
from dnsbalance.stats.counters import QueryStats

log = logging.getLogger(__name__)


class Balancer:
    def __init__(self, loaded: Loaded, persist: bool = False, counters: str | None = None,
                 health: HealthState | None = None, generation: int = 0, secret: bytes | None = None,
                 signing: bool = False, drains: operator_drains.Drains | None = None) -> None:
        """`persist`: write the table and health state to the state folder (the probing process does);
        `counters`: the name under which this process keeps its query counters on disk (None: memory);
        `health`, `generation`, `secret`: given by a supervisor, else read from the state folder, counted
        here and drawn at random; `drains`: the operators' drains in force (None: as the state folder's file
        holds them now, which is what `explain`, `stats` and `plan` build the server's table with)."""
        self.loaded = loaded
        self.persist = persist
        self.state = StateFolder(loaded.config.settings.state_dir)
        # A restart remembers which mirrors were down; with no saved state every entry counts as usable.
        self.health: HealthState = health if health is not None else health_state.load(self.state.health)
        self.generation = generation
        self.drains: operator_drains.Drains = drains if drains is not None else _drains_now(self.state.drains)
        self.random_secret = secret or os.urandom(32)  # cookies, when the configuration sets no shared secret
        self.last_cycle: CycleReport | None = None
        self.stats = QueryStats(self.state.counters(counters) if counters else None)
        # The packet half: what answering needs (snapshot, counters, random source), forked into answerers.
        self.pipeline = Pipeline(lambda: self.serving, self.stats)
        self.pools_changed: dict[PoolLabel, float] = {}  # when each pool's entries or weights last changed
        # Whether each new table has every answer computed before it is published (the supervisor's
        # tables do: answering processes must never compute one under a query).
        self.precompute = False
        self.reloads = {"applied": 0, "refused": 0}  # since start, for /metrics
        self.cluster: ClusterView | None = None  # what the health cycle last saw of the other name servers
        # DNSSEC: whether this balancer's tables are signed when the configuration says so (the server's are;
        # explain, probe and plan need no signatures, nor the key); the signer of the table in service
        self.signing = signing
        self.signer: Signer | None = None
        # where the keys in service came from: "cluster" (the key folder is a copy of the cluster's keys in etcd),
        # "local" (the key folder's own: no `cluster:`, or etcd unreachable since the start); None: unsigned
        self.key_source: str | None = None
        self.key_warning: str | None = None  # the last key read's trouble: kept the keys in service, or a new key
        self.serving: Serving = self._next(loaded, None)
        if persist:  # the operators' log: which configuration a (re)started server serves
            self.note(health_events.Event(time.time(), health_events.Kind.CONFIGURATION, True,
                                          f"configuration {loaded.digest[:12]} in service at start (pid "
                                          f"{os.getpid()}, table generation {self.generation})",
                                          health_events.Kind.CONFIGURATION, generation=self.generation,
                                          digest=loaded.digest))

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
                           *loaded.database_files(), drained=frozenset(self.drains))

    def _next(self, loaded: Loaded, previous: Serving | None, keys: bool = True) -> Serving:
        """Build the next snapshot off to the side; the caller publishes it with one assignment. `keys`: read
        the key folder (start, reload, the cluster's keys changed); else the keys in service sign."""
        self.generation += 1
        with collector_paused():
            serving = build_serving(self.inputs(loaded), loaded.geoip, previous, loaded.asn)
            self.signer = self._signer(loaded, keys)
            inherit = previous.compiled if previous is not None else None
            if self.precompute and self.signer is None:
                fresh = serving.compiled.precompute(inherit)
                log.debug("table generation %d: %d pools' answers computed", self.generation, fresh)
            if self.signer is not None:  # here, in the table's build, before answerers fork: never under a query
                # compiles every pool's answers as it goes, the unchanged pools' taken from the table before
                # (their values, wire and, by those, their signed sets), while signing threads sign the rest
                signatures = serving.compiled.sign(self.signer, inherit)
                log.info("table generation %d: %d signatures made (%d RRsets signed in all) in %.3fs, key tag %d, "
                         "valid until %s", self.generation, signatures.made, len(signatures.by_content),
                         signatures.seconds, signatures.tag,
                         time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(signatures.window.expiration)))
            if native.active():  # the native path's answer table, here on the build's thread (the fork only checks)
                serving.fast.native.ready()
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
            signed = serving.compiled.signatures
            if signed is not None:
                self._write(self.state.signing, json.dumps({
                    "generation": self.generation, "key_tag": signed.tag, "algorithm": int(signed.algorithm),
                    "earliest_expiry": signed.earliest_expiry, "inception": signed.window.inception,
                    "made": signed.made, "rrsets": len(signed.by_content), "seconds": round(signed.seconds, 4)})
                            + "\n")
        return serving

    def _signer(self, loaded: Loaded, read: bool = True) -> Signer | None:
        """The next generation's signer, when the zone is signed. A key that cannot be read raises
        KeyProblem at start; on a reload the keys in service go on (logged). `read`: False on the other
        rebuilds (health, drains, a signature refresh), which sign with the keys in service: a key file
        replaced behind the server's back is not taken up by a health cycle."""
        settings = loaded.config.settings
        if not (self.signing and settings.dnssec.sign):
            return None
        keys = self._in_service()
        if keys is None or read:
            try:
                found = self._keys(loaded)  # the signing key, and a rollover's next or retiring one
            except KeyProblem as exc:
                if keys is None:
                    raise
                self.key_warning = f"DNSSEC key: {exc}; signing on with the keys in service (tag {keys.signing.tag})"
                log.error("%s", self.key_warning)
            else:
                self.key_warning = None
                if keys is not None and found.signing.dnskey not in {k.dnskey for k in keys.published}:
                    # not a rollover's switch (that key was published first): validators fail the zone until
                    # the parent's DS names the new key
                    self.key_warning = (f"DNSSEC: the signing key is now tag {found.signing.tag}, which the zone never "
                                        f"published (it was tag {keys.signing.tag}): validators fail the zone until "
                                        "the parent's DS is `dnsbalance dnssec ds` (a rollover, `dnsbalance dnssec "
                                        "rollover start`, avoids that)")
                    log.warning("%s", self.key_warning)
                keys = found
        now = time.time()
        if self.signer is None or self.signer.zone != settings.zone:
            return Signer(keys.signing, settings.zone, window_at(now, settings.dnssec), others=keys.others,
                          for_parent=keys.for_parent)
        return self.signer.next(now, settings.dnssec, keys.signing, keys.others, keys.for_parent)

    def _in_service(self) -> KeySet | None:
        if self.signer is None:
            return None
        others = {role: key for key, role in self.signer.others}
        return KeySet(self.signer.key, others.get("next"), others.get("retiring"))

    def _keys(self, loaded: Loaded) -> KeySet:
        """The key folder's keys. With `cluster:`, a folder that is no copy of the cluster's keys never replaces
        keys in service that came from the cluster: KeyProblem (a key the cluster does not have must not sign)."""
        settings = loaded.config.settings
        directory = settings.key_dir
        if settings.cluster is None:
            keys = load_keys(directory)
            self.key_source = "local"
            return keys
        with key_folder.lock:  # never half of a copy the cluster's key follower is writing
            files = key_folder.read(directory)
            copy = key_folder.is_copy(directory, files)
        found = key_set(files, lambda name: str(directory / name))
        if found is None:
            raise KeyProblem(f"no DNSSEC key at {directory / KEY_FILE}: run `dnsbalance dnssec keygen --config DIR`")
        if not copy and self.signer is not None and self.key_source == "cluster":
            in_service = {self.signer.key.dnskey, *(key.dnskey for key, _ in self.signer.others)}
            if {key.dnskey for key in found.published} != in_service:
                raise KeyProblem(f"the key folder {directory} holds {describe(found)}, which is not a copy of the "
                                 f"cluster's keys (`dnsbalance dnssec fetch` makes one)")
        self.key_source = "cluster" if copy else "local"
        return found

    def signatures_due(self, now: float) -> bool:
        """Whether the signatures in service have less than `refresh` left (the next build makes new ones)."""
        signatures = self.serving.compiled.signatures
        dnssec = self.config.settings.dnssec
        return signatures is not None and signatures.window.expiration - now <= dnssec.refresh

    def complete(self, deadline: float | None = None) -> int:
        """Compute the answers the table in service still lacks (until `deadline`, time.monotonic());
        from now on every new table comes complete. Returns how many pools were computed."""
        started = time.monotonic()
        fresh = self.serving.compiled.precompute(deadline=deadline)
        if native.active():
            self.serving.fast.native.ready()  # with the answer sets just computed
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

    def regenerate(self, keys: bool = False) -> ActiveTable:
        """Build a snapshot from the current configuration and health, and publish it. `keys`: read the DNSSEC
        key folder anew (a reload, the cluster's keys changed); else the keys in service sign."""
        self.serving = self._next(self.loaded, self.serving, keys)  # one assignment: queries in flight keep theirs
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
        self._persist_health(before)
        self.regenerate()
        return True

    def _persist_health(self, before: HealthState) -> None:
        """The transitions since `before` into the event log, and the state in service to disk (never a stop)."""
        if not self.persist:
            return
        health_events.record(before, self.health, self.state.events)
        try:
            health_state.save(self.health, self.state.health)
        except OSError as exc:
            log.warning("cannot save health state: %s", exc)

    def apply_between(self, observations: tuple[External, ...], now: float) -> bool:
        """Outside observations between cycles (the cluster's consensus as the watch brings it): through the same
        policy, with no probe results and no check run, so the references and the last cycle's report stay. A new
        table only when a target went in or out; True then."""
        before = self.health
        step = policy.next_state(before, Observed(now, 0.0, external=observations), policy_settings(self.loaded.config),
                                 now, checks=())
        for record in step.records:
            log_record(record, self.generation)
        self.health = dataclasses.replace(step.state, cycles=before.cycles)  # not a cycle
        self._persist_health(before)
        if not any(isinstance(r, policy.Transition) for r in step.records):
            return False
        self.regenerate()
        return True

    def reload(self, directory: Path, by: str = "") -> list[Problem]:
        """Re-read the configuration; on any error keep everything as it is and return the problems.
        `by`: who asked (for the operators' event log)."""
        loaded, problems = load(directory)
        Kind, Event = health_events.Kind, health_events.Event
        if loaded is None:
            for problem in problems:
                log.error("reload refused: %s", problem)
            self.reloads["refused"] += 1
            errors = [str(p) for p in problems if p.severity is Severity.ERROR]
            self.note(Event(time.time(), Kind.RELOAD, False, f"refused ({len(errors)} error(s)): "
                            f"{errors[0] if errors else 'no configuration'}; generation {self.generation} stays",
                            Kind.RELOAD, by, generation=self.generation, digest=self.loaded.digest))
            return problems
        for problem in problems:
            log.warning("%s", problem)
        before = self.loaded.digest
        self.loaded = loaded
        self.state = StateFolder(loaded.config.settings.state_dir)
        self.key_warning = None
        self.regenerate(keys=True)
        if self.key_warning is not None:  # `dnsbalance reload` prints it beside "applied"
            problems = [*problems, Problem(loaded.config.settings.key_dir / KEY_FILE, 0, self.key_warning,
                                           Severity.WARNING)]
        self.reloads["applied"] += 1
        now = time.time()
        same = loaded.digest == before
        self.note(Event(now, Kind.RELOAD, True, f"applied: configuration {loaded.digest[:12]}"
                        f"{' (unchanged)' if same else ''}, table generation {self.generation}", Kind.RELOAD, by,
                        generation=self.generation, digest=loaded.digest))
        if not same:
            self.note(Event(now, Kind.CONFIGURATION, True, f"configuration {loaded.digest[:12]} in service (was "
                            f"{before[:12]}), table generation {self.generation}", Kind.CONFIGURATION, by,
                            generation=self.generation, digest=loaded.digest))
        return problems

    def mark_in_service(self, serving: Serving) -> None:
        """Say in the state folder that every answering process answers from `serving` now, with its drains."""
        if self.persist:
            self._write(self.state.in_service, json.dumps({
                "pid": os.getpid(), "generation": serving.inputs.generation,
                "drained": sorted(serving.inputs.drained), "at": time.time()}) + "\n")

    def note(self, event: health_events.Event) -> None:
        """An operator's action into the operators' event log (the server's own balancer only)."""
        if self.persist:
            health_events.note(self.state.operations, event)

    def set_drains(self, drains: operator_drains.Drains) -> bool:
        """Put the operators' drains in force now: a new table generation, when they change what is drained."""
        if set(drains) == set(self.drains):
            self.drains = drains  # a new reason or expiry: shown, nothing to rebuild
            return False
        self.drains = drains
        self.regenerate()
        return True

    def changed_on_disk(self, directory: Path) -> bool:
        return fingerprint(directory) != self.loaded.fingerprint

    @property
    def rng(self) -> random.Random:
        return self.pipeline.rng

    @rng.setter
    def rng(self, rng: random.Random) -> None:
        self.pipeline.rng = rng

    def handle(self, packet: bytes, client: str, tcp: bool, serving: Serving | None = None) -> bytes | None:
        """One query in, one reply out (None: drop), through the answer pipeline. Never raises."""
        return self.pipeline.handle(packet, client, tcp, serving)

    def full(self, serving: Serving, packet: bytes, client: str, tcp: bool, slip: bool = False) -> bytes | None:
        """Every stage of the pipeline, without the fast path's shortcut."""
        return self.pipeline.full(serving, packet, client, tcp, slip)


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


def log_problems(problems: list[Problem]) -> None:
    for problem in problems:
        (log.error if problem.severity is Severity.ERROR else log.warning)("%s", problem)


def _drains_now(path: Path) -> operator_drains.Drains:
    """The drains in force now as the file says; an unreadable file is logged and drains nothing."""
    try:
        return operator_drains.active(operator_drains.read(path), time.time())
    except (OSError, operator_drains.BadDrains) as exc:
        log.warning("ignoring unreadable drains file %s: %s", path, exc)
        return operator_drains.NONE
