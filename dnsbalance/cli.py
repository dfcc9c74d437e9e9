"""Command line: serve, check, explain."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from dnsbalance import __version__
from dnsbalance import drains as operator_drains
from dnsbalance.cli_help import command_help, program_help
from dnsbalance.configuration.checker import Checker
from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.locations import CONFIG_VARIABLE, LOCAL_CONFIG, SYSTEM_CONFIG, default_config
from dnsbalance.configuration.model import Settings
from dnsbalance.configuration.names import parse_hostport
from dnsbalance.configuration.problems import Severity
from dnsbalance.configuration.settings_file import read_settings
from dnsbalance.configuration.state_dir import state_dir_problems, unwritable
from dnsbalance.dnssec import rollover
from dnsbalance.dnssec.check import cluster_key_problems, dnssec_problems
from dnsbalance.dnssec.key_files import describe, key_set
from dnsbalance.dnssec.keys import KEY_FILE, NEXT_FILE, RETIRING_FILE, KeyProblem, KeySet, ds_line, keygen, load_keys
from dnsbalance.geo.locate import builtin_database
from dnsbalance.geo.rebuild import DEFAULT_SOURCE, RebuildError, rebuild
from dnsbalance.health import events as health_events
from dnsbalance.health import state as health_state
from dnsbalance.health.cycle import CycleReport, run_cycle
from dnsbalance.health.external import ExternalFile
from dnsbalance.health.fetch import new_client
from dnsbalance.health.lock_names import unconfirmed_locks
from dnsbalance.health.loopback_only import install_from_environment
from dnsbalance.health.report import probe_rows, probe_table
from dnsbalance.health.settings import policy_settings
from dnsbalance.health.state import HealthState
from dnsbalance.health.verdict import TargetKind
from dnsbalance.health.view import HealthView
from dnsbalance.ops.addrfile import DEFAULT_OUT, ImportProblem, OutputNotEmpty, import_addr_file
from dnsbalance.ops.drain_command import add_drain_commands, drain_commands
from dnsbalance.ops.explain import explain
from dnsbalance.ops.monitoring import Code, assess, unknown
from dnsbalance.ops.plan import file_changes, plan
from dnsbalance.ops.shares import bent_shares, single_address
from dnsbalance.process.answerer import Closable
from dnsbalance.process.instance import (
    InstanceError,
    acquire,
    bind_status,
    check_ports_free,
    is_dnsbalance,
    read_identity,
    read_reload,
    request_reload,
    running_pid,
)
from dnsbalance.process.supervisor import START_PRECOMPUTE, serve
from dnsbalance.ranking.build import build_table
from dnsbalance.serving.balancer import Balancer, log_problems
from dnsbalance.serving.inputs import Loaded, load, read_files
from dnsbalance.serving.served_copy import load_copy
from dnsbalance.statefiles import StateFolder
from dnsbalance.stats.counters import all_totals, request_reset
from dnsbalance.stats.report import report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnsbalance", **program_help())  # long help: cli_help.py
    parser.add_argument("--version", action="version", version=f"dnsbalance {__version__}")
    # --config before the subcommand or after it (`dnsbalance --config DIR check`); SUPPRESS keeps the
    # subcommand's parser from overwriting the one given first with its default
    config_help = (f"configuration folder (default: ${CONFIG_VARIABLE}, else ./{LOCAL_CONFIG} when it exists, "
                   f"else {SYSTEM_CONFIG})")
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, **command_help(name, help))
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
        return sub

    serving = command("serve", "answer DNS queries for the zone")
    serving.add_argument("--listen", action="append", metavar="HOST:PORT",
                     help="listen here instead of the config's listen (repeatable)")
    serving.add_argument("--status", metavar="HOST:PORT",
                         help="status page and /metrics here instead of the config's status (off: none)")
    serving.add_argument("--workers", type=int, default=1, metavar="N",
                     help="N processes answer on the same ports (SO_REUSEPORT); one of them probes (default 1)")
    serving.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serving.add_argument("--start-precompute", type=float, default=START_PRECOMPUTE, metavar="SECONDS",
                         help="seconds spent precomputing answers before the first answer; a bigger table's rest "
                              f"is completed while serving (default {START_PRECOMPUTE:g})")
    command("check", "report every configuration problem, with file:line")
    probing = command("probe", "run one health cycle now and print its verdicts, with cluster: also what each "
                               "name server sees and their consensus (exit 0 ok, 1 warning, 2 critical, 3 unknown)")
    probing.add_argument("--json", action="store_true", help="the verdict and every target's as JSON")
    status = command("status", "the running server's verdict from its status page, found through the state "
                               "folder (exit 0 ok, 1 warning, 2 critical, 3 unknown)")
    status.add_argument("--json", action="store_true", help="the verdict and the instance as JSON")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the status page")
    stats = command("stats", "queries by country and continent, distinct clients, observed shares against weights")
    stats.add_argument("--reset", action="store_true", help="start every count afresh (observed shares too)")
    reloading = command("reload", "check the configuration, tell the running server to load it (SIGHUP) and "
                                  "wait for the outcome")
    reloading.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the outcome")
    imports = commands.add_parser("import-dnsbalance", help="convert a DNS Balance addr file into a config folder",
                                  **command_help("import-dnsbalance", "convert a DNS Balance addr file into a "
                                                                      "config folder"))
    imports.add_argument("addr_file", type=Path, help="DNS Balance $addr_db file")
    imports.add_argument("--zone", required=True, help="the zone the names live in, e.g. cdn.debian.or.jp")
    imports.add_argument("--out", type=Path, default=DEFAULT_OUT,
                         help=f"folder to write (default ./{DEFAULT_OUT}, never the live ./config); it must be "
                              "missing or empty unless --replace")
    imports.add_argument("--replace", action="store_true",
                         help="replace a non-empty --out folder as a whole (its old files are removed)")
    imports.add_argument("--nameserver", action="append", metavar="NAME",
                         help="a name of the addr file that is one of the zone's name servers, written as "
                              "nameservers: with its addresses as glue (repeatable; default: names such as ns, "
                              "ns1, dns2)")
    imports.add_argument("--asn-database", metavar="FILE.mmdb",
                         help="ASN database for the AS namespaces (path relative to --out, or absolute); "
                              "without it they are left out")
    events = command("events", "the event log: every mirror's and relay service's up/down changes, and operators' "
                               "drains, undrains, reloads and configurations")
    events.add_argument("--mirror", metavar="NAME", help="only this mirror (every archive) or health key")
    events.add_argument("--since", metavar="DURATION", type=_duration,
                        help="only the last DURATION (90s, 30m, 6h, 2d, 1w; a plain number is seconds)")
    planning = command("plan", "what applying the configuration on disk would change for clients, against the "
                               "one in service (exit 0: nothing, 2: changes, 1: errors)")
    planning.add_argument("--against", type=Path, metavar="DIR",
                          help="compare with this configuration folder instead of the one the server runs")
    geo = command("geoip", "the built-in GeoIP database: rebuild it into the state folder, or show which is used")
    geo.add_argument("action", choices=("rebuild", "show"))
    geo.add_argument("--from", dest="source", type=Path, default=DEFAULT_SOURCE, metavar="DIR",
                     help=f"rebuild: the folder of Tor's geoip and geoip6 files (default {DEFAULT_SOURCE}, "
                          "Debian package tor-geoipdb)")
    dnssec = command("dnssec", "the zone's DNSSEC key: make it, print the DS for the parent, show signing state")
    dnssec.add_argument("action", choices=("keygen", "ds", "status", "rollover", "fetch"))
    dnssec.add_argument("step", nargs="?", choices=("start", "switch", "finish"),
                        help="rollover: start (publish a next key), switch (it signs), finish (the old key goes); "
                             "each reloads the running server")
    dnssec.add_argument("--force", action="store_true", help="rollover: take a step before its RFC 7583 wait is "
                        "over, or start one to another algorithm; fetch: set aside a key the cluster does not have "
                        "(kept in the key folder's replaced-*)")
    add_drain_commands(command, _duration)
    why = command("explain", "show the table, entries and weights a client gets for a name, and why")
    why.add_argument("client", help="client (or client subnet) IP address")
    why.add_argument("name", help="owner name, absolute or relative to the zone")
    return parser


def main(argv: list[str] | None = None) -> int:
    install_from_environment()  # test mode: nothing but loopback (a no-op unless the test harness asks)
    args = _parser().parse_args(argv)
    if not hasattr(args, "config"):
        args.config = default_config()
        if args.command != "import-dnsbalance" and not args.config.is_dir():
            where = (f"{CONFIG_VARIABLE}={os.environ[CONFIG_VARIABLE]} is not a folder"
                     if os.environ.get(CONFIG_VARIABLE, "").strip()
                     else f"neither ./{LOCAL_CONFIG} nor {SYSTEM_CONFIG} exists")
            message = f"no configuration folder: {where}; give --config DIR or set {CONFIG_VARIABLE}"
            if args.command in ("probe", "status"):  # monitoring-plugin commands: UNKNOWN, on stdout
                return _report_unknown(args, message)
            print(message, file=sys.stderr)
            return 1
    commands = {"serve": _serve, "check": _check, "explain": _explain, "probe": _probe, "stats": _stats,
                "reload": _reload, "status": _status, "import-dnsbalance": _import, "events": _events, "plan": _plan,
                "geoip": _geoip, "dnssec": _dnssec, **drain_commands()}
    try:
        code = commands[args.command](args)
        sys.stdout.flush()  # here, not at exit: a reader gone by now is handled below
        return code
    except BrokenPipeError:
        # `dnsbalance stats | head -1`: the reader has gone, which is no error; the output still buffered
        # must not be flushed into the closed pipe at exit (a second BrokenPipeError, printed as a traceback)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE (128 + 13)


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration(text: str) -> float:
    """'6h' -> 21600.0; argparse turns the ValueError into a usage message naming the option."""
    number, unit = (text[:-1], text[-1]) if text and text[-1] in UNITS else (text, "s")
    try:
        value = float(number) * UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration (90s, 30m, 6h, 2d, 1w)") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration (90s, 30m, 6h, 2d, 1w)")
    return value


def _load_or_report(directory: Path) -> Loaded | None:
    """The configuration, or None after printing its problems to stderr."""
    loaded, problems = load(directory)
    if loaded is None:
        for problem in problems:
            print(problem, file=sys.stderr)
    return loaded


def _check(args: argparse.Namespace) -> int:
    loaded, problems = load(args.config)
    if loaded is not None:  # the host's side: where the server will write (the unit's ExecStartPre asks too)
        problems += state_dir_problems(args.config, loaded.config.settings.state_dir)
        problems += dnssec_problems(args.config, loaded.config.settings, time.time())
        if loaded.config.settings.dnssec.sign and loaded.config.settings.cluster is not None:
            from dnsbalance.cluster.keystore import check_warnings

            problems += cluster_key_problems(args.config, check_warnings(loaded.config.settings))
        if loaded.config.settings.health.enabled:  # lock names the server never learned: a guess
            saved = health_state.load(StateFolder(loaded.config.settings.state_dir).health)
            problems += unconfirmed_locks(loaded.config, saved)
    for problem in problems:
        print(problem)
    errors = sum(p.severity is Severity.ERROR for p in problems)
    if loaded is None or errors:
        print(f"{errors} error(s), {len(problems) - errors} warning(s)", file=sys.stderr)
        return 1
    config = loaded.config
    for line in bent_shares(config):  # the operator's min_answers bends these shares: say by how much
        print(line)
    for line in single_address(config):  # advice, not a problem: on stderr, so stdout keeps its shape
        print(f"note: {line}", file=sys.stderr)
    print(f"ok: zone {config.settings.zone}, {len(config.mirrors)} mirrors, {len(config.relays)} relays, "
          f"{len(config.countries)} country and {len(config.continents)} continent tables"
          + (f", {len(config.networks)} network and {len(config.asns)} AS tables"
             if config.networks or config.asns else "")
          + (f", {len(problems)} warning(s)" if problems else ""))
    return 0


def _explain(args: argparse.Namespace) -> int:
    loaded = _load_or_report(args.config)
    if loaded is None:
        return 1
    try:
        address = ipaddress.ip_address(args.client)
    except ValueError:
        print(f"'{args.client}' is not an IP address", file=sys.stderr)
        return 2
    balancer = Balancer(loaded, generation=_served_generation(loaded) - 1)
    location = balancer.serving.locator.place(address)  # GeoIP, network tables and AS, as queries are
    for line in explain(loaded.config, balancer.table, location, args.name, address, balancer.health,
                        balancer.drains):
        print(line)
    return 0


def _served_generation(loaded: Loaded) -> int:
    """The generation of the table the server has in service, when it was built from this configuration:
    with the saved health, `explain` then builds the very table the server answers from."""
    try:
        served = json.loads(StateFolder(loaded.config.settings.state_dir).serving.read_text(encoding="utf-8"))
        if served.get("digest") == loaded.digest:
            return int(served["generation"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return 1


def _serve(args: argparse.Namespace) -> int:
    # Until the event loop installs its handlers, a reload or health signal must not kill the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # its per-run lines drown ours
    if args.log_level != "DEBUG":  # httpx logs every request at INFO: 720,000 lines a day for 1,000 mirrors
        for chatty in ("httpx", "httpcore"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    log = logging.getLogger("dnsbalance")
    loaded, problems = load(args.config)
    log_problems(problems)
    if loaded is None:
        log.error("not starting: the configuration in %s has errors", args.config)
        return 1
    if args.workers < 1:
        log.error("--workers must be at least 1")
        return 2
    listen = args.listen or list(loaded.config.settings.listen)
    for item in listen:
        try:
            parse_hostport(item)
        except ValueError as exc:
            log.error("--listen: %s", exc)
            return 2
    status_listen = loaded.config.settings.status_listen
    if args.status is not None:
        status_listen = None if args.status == "off" else args.status
        try:  # now, not when the status page starts after the listeners answer
            if status_listen is not None:
                parse_hostport(status_listen)
        except ValueError as exc:
            log.error("--status: %s (or off)", exc)
            return 2
    if loaded.config.settings.dnssec.sign and loaded.config.settings.cluster is not None:
        from dnsbalance.cluster.keystore import at_start

        refused = at_start(loaded.config.settings)  # the key folder made a copy of the cluster's keys
        if refused is not None:
            log.error("not starting: dnssec: %s", refused)
            return 1
    if loaded.config.settings.dnssec.sign:
        try:  # now, with a clear message, rather than in the first table's build
            load_keys(loaded.config.settings.key_dir)  # and a rollover's other key, if any
        except KeyProblem as exc:
            log.error("not starting: dnssec: sign is true but %s", exc)
            return 1
    state = StateFolder(loaded.config.settings.state_dir)
    try:
        instance = acquire(state)
    except InstanceError as exc:
        log.error("not starting: %s", exc)
        return 1
    except OSError as exc:  # a read-only state folder: answer anyway, without pid file and lock
        log.warning("state folder %s: %s; running without a pid file or instance lock (`dnsbalance reload` "
                    "cannot find this server; `dnsbalance check` says why)", state.root, exc)
        instance = None
    try:
        check_ports_free(listen)
        status_socket = bind_status(status_listen) if status_listen is not None else None
    except InstanceError as exc:
        log.error("not starting: %s", exc)
        if instance is not None:
            instance.release()
        return 1
    held: list[Closable] = [instance.lock] if instance is not None and instance.lock is not None else []
    try:
        balancer = Balancer(loaded, persist=True, counters="main", health=_warm_start(loaded), signing=True)
        balancer.complete(deadline=time.monotonic() + max(0.0, args.start_precompute))  # a big table's rest later
        log.info("dnsbalance %s: zone %s, GeoIP %s", __version__, loaded.config.settings.zone,
                 loaded.geoip.describe())
        return serve(balancer, listen, args.config, args.workers, status_socket, held)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    finally:
        if status_socket is not None:
            status_socket.close()
        if instance is not None:
            instance.release()


def _warm_start(loaded: Loaded) -> HealthState | None:
    """With `cluster:`: the cluster's current verdicts before the first table (None: the saved ones)."""
    settings = loaded.config.settings
    if settings.cluster is None or not settings.health.enabled:
        return None
    from dnsbalance.cluster.member import warm_start

    saved = health_state.load(StateFolder(settings.state_dir).health)
    return warm_start(settings.cluster, saved, policy_settings(loaded.config).known, time.time())


def _probe(args: argparse.Namespace) -> int:
    """One health cycle now; exit with the monitoring-plugin code of its verdict (ops/monitoring.py)."""
    loaded, problems = load(args.config)
    if loaded is None:
        errors = [str(p) for p in problems if p.severity is Severity.ERROR]
        for line in errors:  # every one on stderr; the first on the plugin's line
            print(line, file=sys.stderr)
        return _report_unknown(args, f"{args.config}: {len(errors)} configuration error(s), the first: "
                                     f"{errors[0] if errors else 'unreadable'}")
    config = loaded.config

    async def once() -> CycleReport:
        client = new_client(config.settings.health.concurrency, config.settings.health.ca,
                            source=config.settings.health.source)
        try:
            # the server's saved references: a push in progress is judged as the server judges it
            state = StateFolder(config.settings.state_dir)
            saved = health_state.load(state.health)
            return await run_cycle(config, client, config.settings.health.concurrency, saved,
                                   [ExternalFile(state.external)])
        finally:
            await client.aclose()

    try:
        report = asyncio.run(once())
    except Exception as exc:  # noqa: BLE001 - a monitoring check must end with UNKNOWN, not a traceback
        return _report_unknown(args, f"the health cycle could not run: {type(exc).__name__}: {exc}")
    # the table these verdicts make, each taken as final (no fall/rise): which names would lose every entry
    view = HealthView(MappingProxyType({v.name: v.ok for v in report.verdicts}),
                      frozenset(v.name for v in report.verdicts if v.ok and v.syncing))
    prober = [f"every {kind.value} failed: {report.likely_cause(kind)}" for kind in TargetKind
              if report.all_failed(kind)]
    drains = _drains_in_force(StateFolder(config.settings.state_dir))  # the operators': out, whatever the verdict
    verdict = assess(config, build_table(config, view, 1, 0, drained=frozenset(drains)),
                     {v.name: v.reason for v in report.verdicts}, prober)
    cluster = config.settings.cluster
    if args.json:
        document = {**verdict.as_json(), "targets": probe_rows(report, config, drains),
                    "cycle": {"started": report.started, "duration": report.duration, "master": report.master_note}}
        if cluster is not None:  # several name servers: each one's view and the consensus (read-only)
            from dnsbalance.cluster.report import cluster_json, read_cluster

            document["cluster"] = cluster_json(read_cluster(cluster), cluster, report.verdicts,
                                               policy_settings(config).known)
        print(json.dumps(document, indent=1))
        return int(verdict.code)
    print(verdict.line)
    for line in probe_table(report, config, drains):
        print(line)
    for line in verdict.details():
        print(line)
    if cluster is not None:  # several name servers: each one's view and the consensus (read-only)
        from dnsbalance.cluster.report import cluster_table, read_cluster

        print()
        for line in cluster_table(read_cluster(cluster), cluster, report.verdicts, policy_settings(config).known):
            print(line)
    return int(verdict.code)


def _report_unknown(args: argparse.Namespace, why: str) -> int:
    """UNKNOWN (3), the monitoring-plugin way: the one line on stdout (where a monitoring system reads it)."""
    verdict = unknown(why)
    print(json.dumps(verdict.as_json(), indent=1) if args.json else verdict.line)
    return int(verdict.code)


def _status(args: argparse.Namespace) -> int:
    """The running server's own verdict, from its status page (found through the state folder)."""
    settings = read_settings(Checker(), args.config)
    if settings is None:
        return _report_unknown(args, f"cannot read {args.config / 'dnsbalance.yaml'}")
    state = StateFolder(settings.state_dir)
    identity = read_identity(state)
    if identity is None:
        pid = running_pid(state)
        return _report_unknown(args, f"no running dnsbalance holds {state.lock}" if pid is None else
                               f"dnsbalance (pid {pid}) wrote no {state.instance.name}: it is starting, or older "
                               "than the status command (restart it)")
    if not identity.get("status"):
        return _report_unknown(args, f"dnsbalance (pid {identity['pid']}) runs without a status page "
                                     "(--status off or status: off)")
    url = f"http://{identity['status']}/status.json"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310 - the server's own URL
            document = json.loads(response.read())
        found = document["assessment"]
        code = Code(found["code"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _report_unknown(args, f"cannot read {url}: {exc}")
    where = (f"zone {document.get('zone')}, pid {identity['pid']}, configuration {identity.get('config')}, DNS on "
             f"{', '.join(identity.get('listen') or [])}, status page http://{identity['status']}/"
             + (f", instance {identity['name']}" if identity.get("name") else ""))
    if args.json:
        print(json.dumps({**found, "instance": identity, "url": url}, indent=1))
        return int(code)
    print(found["line"])
    print(where)
    for note in found.get("prober") or []:
        print(note)
    for failing in found.get("failing") or []:
        print(f"failing {failing['kind']} {failing['target']}: {failing['reason']}")
    for name in found.get("stranded") or []:
        print(f"no usable entry: {name}")
    return int(code)


def _stats(args: argparse.Namespace) -> int:
    loaded = _load_or_report(args.config)
    if loaded is None:
        return 1
    config = loaded.config
    counters = StateFolder(config.settings.state_dir).counters_dir
    if args.reset:
        request_reset(counters)
        print(f"counters reset: every serving process starts counting afresh within seconds ({counters})")
        return 0
    table = Balancer(loaded, generation=_served_generation(loaded) - 1).table  # health-adjusted, as served
    for line in report(config, all_totals(counters), table):
        print(line)
    return 0


def _events(args: argparse.Namespace) -> int:
    loaded = _load_or_report(args.config)
    if loaded is None:
        return 1
    state = StateFolder(loaded.config.settings.state_dir)
    path = state.events
    since = time.time() - args.since if args.since is not None else 0.0
    found = [e for e in health_events.read_all(path, state.operations, since)
             if args.mirror is None or health_events.matches(e, args.mirror)]
    for event in found:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.time))
        what = ("UP  " if event.up else "DOWN") if not event.operator else \
            (event.kind.upper() if event.kind != health_events.Kind.RELOAD or event.up else "RELOAD REFUSED")
        who = f"by {event.by}: " if event.by and event.kind in (health_events.Kind.RELOAD,
                                                              health_events.Kind.CONFIGURATION) else ""
        print(f"{stamp} UTC  {event.key:<24} {what:<8}  {who}{event.reason}")
    if not found:
        print(f"no events{f' for {args.mirror}' if args.mirror else ''}"
              f"{' in that time' if args.since is not None else ''} ({path}, {state.operations})", file=sys.stderr)
    return 0


def _reload(args: argparse.Namespace) -> int:
    loaded, problems = load(args.config)
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity is Severity.ERROR else sys.stdout)
    if loaded is None:
        print("reload refused: the configuration has errors; the running server keeps its own", file=sys.stderr)
        _note_refused(args.config, problems)
        return 1
    state = StateFolder(loaded.config.settings.state_dir)
    pid = running_pid(state)
    if pid is None or not is_dnsbalance(pid):
        print(f"no running dnsbalance holds {state.lock} (a pid file left by a stopped server is not "
              f"signalled); nothing reloaded", file=sys.stderr)
        blocked = unwritable(state.root)
        if blocked is not None:  # a server may run there all the same, without lock or pid file
            print(f"state_dir {state.root} {blocked}: a server using it runs without pid file or lock; see "
                  "`dnsbalance check`", file=sys.stderr)
        return 3
    before = read_reload(state.reload_result)
    request_reload(state, operator_drains.who())  # names the operator in the server's event log
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        print(f"cannot signal dnsbalance (pid {pid}): {exc}", file=sys.stderr)
        return 3
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        outcome = read_reload(state.reload_result)
        if outcome is not None and outcome != before and outcome.get("pid") == pid:
            if outcome.get("applied"):
                print(f"configuration checked; sent SIGHUP to dnsbalance (pid {pid}): applied, table generation "
                      f"{outcome.get('generation')} in service")
                for line in outcome.get("warnings") or []:  # type: ignore[attr-defined]  # e.g. a DNSSEC key kept
                    print(f"  {line}", file=sys.stderr)
                return 0
            print(f"reload refused by dnsbalance (pid {pid}); it keeps its configuration:", file=sys.stderr)
            for line in outcome.get("errors") or []:  # type: ignore[attr-defined]
                print(f"  {line}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"sent SIGHUP to dnsbalance (pid {pid}) but saw no outcome within {args.timeout:g}s", file=sys.stderr)
    return 4


def _note_refused(config: Path, problems: list) -> None:  # type: ignore[type-arg]
    """A reload `check` refused before any signal, in the operators' event log when a server runs there."""
    settings = read_settings(Checker(), config)
    if settings is None:
        return  # no state folder to tell
    state = StateFolder(settings.state_dir)
    pid = running_pid(state)
    if pid is None or not is_dnsbalance(pid):
        return
    errors = [str(p) for p in problems if p.severity is Severity.ERROR]
    health_events.note(state.operations, health_events.Event(
        time.time(), health_events.Kind.RELOAD, False, f"refused by `dnsbalance reload` before any signal "
        f"({len(errors)} error(s)): {errors[0] if errors else 'no configuration'}; the server keeps its own",
        health_events.Kind.RELOAD, operator_drains.who()))
    operator_drains.hand_over([state.operations, state.operations.with_name(state.operations.name + ".1"),
                               state.operations.with_name(state.operations.name + ".lock")])


def _import(args: argparse.Namespace) -> int:
    try:
        written, warnings = import_addr_file(args.addr_file, args.zone, args.out, args.replace, args.nameserver,
                                             args.asn_database)
    except ImportProblem as exc:
        print(f"{args.addr_file}:{exc.line}: {exc.detail}", file=sys.stderr)
        return 1
    except OutputNotEmpty as exc:
        print(f"not imported: {exc}", file=sys.stderr)
        return 1
    for line, message in warnings:
        print(f"{args.addr_file}:{line}: warning: {message}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    config, problems = check_config(args.out)
    for problem in problems:
        print(problem)
    return 0 if config is not None else 1


def _plan(args: argparse.Namespace) -> int:
    loaded, problems = load(args.config)
    for problem in problems:  # what `check` says, first: errors stop the plan, warnings do not
        print(problem)
    errors = sum(p.severity is Severity.ERROR for p in problems)
    if loaded is None or errors:
        print(f"{errors} error(s), {len(problems) - errors} warning(s): no plan; `dnsbalance reload` would refuse "
              "this configuration", file=sys.stderr)
        return 1
    state = StateFolder(loaded.config.settings.state_dir)
    if args.against is not None:
        running, found = check_config(args.against)
        if running is None:
            print(f"{args.against}: cannot compare with a configuration that has errors:", file=sys.stderr)
            for problem in found:
                print(f"  {problem}", file=sys.stderr)
            return 1
        running_files: Mapping[str, bytes] = read_files(args.against)
        what = str(args.against)
    else:
        try:
            running, copy = load_copy(state.served_config)
        except FileNotFoundError:
            print(f"no copy of the configuration in service at {state.served_config}: a running dnsbalance writes "
                  "it at start and at every reload (is it running with this state folder?); `--against DIR` "
                  "compares with another folder", file=sys.stderr)
            return 1
        except (OSError, ValueError) as exc:
            print(f"cannot read the configuration in service: {exc}", file=sys.stderr)
            return 1
        running_files, what = copy.files, f"the configuration in service ({state.served_config})"
        if copy.digest != _served_digest(state):
            print(f"note: {state.serving} names another configuration than {state.served_config}; the server may "
                  "be mid-reload or from an older version: compare again in a moment")
    health = health_state.load(state.health)
    judged = f"{state.health}, {len(health.mirrors)} mirror and relay services judged" if health.mirrors \
        else "no health state yet: every entry counts as usable"
    print(f"plan: {args.config} against {what}; health from {judged}")
    for line in file_changes(running_files, loaded.files):
        print(line)
    drains = _drains_in_force(state)
    for name, drain in sorted(drains.items()):  # in force before and after: a reload keeps them
        print(f"drained now: {name} {drain.describe()} (stays drained after the reload; `dnsbalance undrain`)")
    result = plan(running, loaded.config, health.view(), frozenset(drains))
    for line in result.lines:
        print(line)
    for line in single_address(loaded.config):  # as `check` notes them: on stderr, the plan's stdout unchanged
        print(f"note: {line}", file=sys.stderr)
    if result.changes:
        print(f"{result.changes} change(s); `dnsbalance reload` applies them"
              + ("" if loaded.config.settings.reload.auto_apply else
                 " (reload.auto_apply is off: they wait for it)"))
        return 2
    print("no changes for clients" + (" (the files differ in comments or layout only)"
                                      if dict(running_files) != dict(loaded.files) else ""))
    return 0


def _drains_in_force(state: StateFolder) -> operator_drains.Drains:
    try:
        return operator_drains.active(operator_drains.read(state.drains), time.time())
    except (OSError, operator_drains.BadDrains) as exc:
        print(f"note: cannot read {state.drains}: {exc}", file=sys.stderr)
        return operator_drains.NONE


def _served_digest(state: StateFolder) -> str | None:
    try:
        return str(json.loads(state.serving.read_text(encoding="utf-8"))["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _dnssec(args: argparse.Namespace) -> int:
    """keygen: a new combined signing key (never over one); ds: the parent's DS lines; status: keys and the
    signing state the server last wrote; rollover STEP: a key rollover's step; fetch: the cluster's keys into
    the key folder. Only public parts are printed. With `cluster:` the keys live in etcd (cluster/keystore.py)."""
    settings = read_settings(Checker(), args.config)
    if settings is None:
        print(f"{args.config}/dnsbalance.yaml cannot be read", file=sys.stderr)
        return 1
    directory = settings.key_dir
    if (args.step is not None) != (args.action == "rollover"):
        print("dnssec rollover takes a step: start, switch or finish (and only rollover does)", file=sys.stderr)
        return 2
    if args.action == "fetch" and settings.cluster is None:
        print("dnssec fetch copies the cluster's keys from etcd: this configuration has no `cluster:`",
              file=sys.stderr)
        return 1
    try:
        if args.action == "keygen":
            if settings.cluster is not None:
                from dnsbalance.cluster import keystore

                key = keystore.keygen(settings)
                print(f"the cluster's key, created in etcd ({settings.cluster.prefix}dnssec/{KEY_FILE}) and copied "
                      f"to {directory / KEY_FILE} (mode 0600): key tag {key.tag}, algorithm {key.algorithm.value} "
                      f"({key.algorithm.name}); every name server of the cluster copies it at its start (or "
                      f"`dnsbalance dnssec fetch`); give the parent its DS: dnsbalance dnssec ds --config "
                      f"{args.config}")
                return 0
            key = keygen(directory, settings.dnssec.algorithm)
            print(f"wrote {directory / KEY_FILE} (mode 0600): key tag {key.tag}, algorithm {key.algorithm.value} "
                  f"({key.algorithm.name}); give the parent its DS: dnsbalance dnssec ds --config {args.config}")
            return 0
        if args.action == "rollover":
            return _rollover(args, settings)
        if args.action == "fetch":
            from dnsbalance.cluster import keystore

            print(keystore.fetch(settings, args.force, time.time()))
            return 0
        keys, source = _dnssec_keys(settings)
    except KeyProblem as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:  # a key folder that cannot be written (read-only, another owner)
        print(f"{exc.filename or directory}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.action == "ds":
        for key in keys.for_parent:  # during a rollover, the next key's too: the parent adds it ahead of the switch
            print(ds_line(settings.zone, key))
        return 0
    print(f"zone {settings.zone}: signing {'on' if settings.dnssec.sign else 'off (dnssec: sign: false)'}")
    if settings.cluster is not None:
        print(f"keys: {source}")
    for key, role, name in ((keys.signing, "signs", KEY_FILE), (keys.next, "next, published", NEXT_FILE),
                            (keys.retiring, "retiring, published", RETIRING_FILE)):
        if key is not None:
            shown = name if settings.cluster is not None else directory / name
            print(f"key {shown}: tag {key.tag}, algorithm {key.algorithm.value} ({key.algorithm.name}), {role}")
    for key in keys.for_parent:
        print(f"DS {ds_line(settings.zone, key)}")
    try:
        state = json.loads(StateFolder(settings.state_dir).signing.read_text(encoding="utf-8"))
        expiry = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(int(state["earliest_expiry"])))
        print(f"in service: generation {state['generation']}, key tag {state['key_tag']}, earliest signature "
              f"expiry {expiry}, {state['rrsets']} RRsets signed, {state['made']} signatures made for it in "
              f"{state['seconds']}s")
    except (OSError, ValueError, KeyError, TypeError):
        print("in service: no signing state written (the server is not running signed)")
    return 0


def _dnssec_keys(settings: Settings) -> tuple[KeySet, str]:
    """The keys `ds` and `status` show, and where they are: the cluster's (etcd) with `cluster:`, else (or with
    etcd unreachable, said on stderr) the key folder's. KeyProblem when there is none."""
    directory = settings.key_dir
    if settings.cluster is None:
        return load_keys(directory), f"the key folder {directory}"
    from dnsbalance.cluster import keystore
    from dnsbalance.cluster.etcd import EtcdDown
    from dnsbalance.dnssec import key_folder

    local_files = key_folder.read(directory)
    try:
        local = key_set(local_files, lambda name: str(directory / name))
    except KeyProblem as exc:
        local = None
        print(f"note: {exc}", file=sys.stderr)
    copy = key_folder.is_copy(directory, local_files)
    try:
        theirs, _ = keystore.cluster_keys(settings)
    except EtcdDown as exc:
        print(f"note: etcd cannot be reached ({exc}): showing the key folder's keys, which may not be the "
              f"cluster's", file=sys.stderr)
        if local is None:
            raise KeyProblem(f"no DNSSEC key at {directory / KEY_FILE}, and the cluster's cannot be read") from None
        held = "a copy of the cluster's keys" if copy else "its own keys (source: local)"
        return local, f"the key folder {directory}, {held}; etcd unreachable"
    if theirs is None:
        raise KeyProblem("the cluster has no DNSSEC key: `dnsbalance dnssec keygen --config DIR` makes it (a "
                         "server whose key folder has one publishes it at its start)")
    same = local is not None and [k.dnskey for k in local.published] == [k.dnskey for k in theirs.published]
    where = (f"the cluster's (etcd {settings.cluster.prefix}dnssec/); the key folder {directory} holds "
             + ("a copy (source: cluster)" if same and copy else
                "the same keys, not marked as a copy (the server marks it at its start)" if same else
                "no key" if local is None else
                f"an older copy ({describe(local)}): a running server follows within seconds, a stopped one at its "
                "start" if copy else
                f"OTHER keys ({describe(local)}), not the cluster's ({describe(theirs)}): `dnsbalance dnssec fetch`"))
    return theirs, where


def _rollover(args: argparse.Namespace, settings: Settings) -> int:
    """One step of a key rollover (dnssec/rollover.py), then a reload of the running server so that it serves
    the step at once (none running: it will at its start)."""
    now = time.time()
    directory = settings.key_dir
    if settings.cluster is not None:  # on the cluster's keys in etcd; every name server follows
        from dnsbalance.cluster import keystore

        step = keystore.take_step(settings, args.step, now, args.force)
    elif args.step == "start":
        step = rollover.start(directory, settings.dnssec.algorithm, now, args.force)
    elif args.step == "switch":
        step = rollover.switch(directory, settings, now, args.force)
    else:
        step = rollover.finish(directory, settings, now, args.force)
    print(step.message)
    if settings.dnssec.sign:
        args.timeout = 30.0
        reloaded = _reload(args)
        return 0 if reloaded in (0, 3) else reloaded  # 3: no server running, it serves the step at its start
    return 0


def _geoip(args: argparse.Namespace) -> int:
    loaded, problems = load(args.config)
    if loaded is None and args.action == "show":
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    if args.action == "show":
        print(f"in use with {args.config}: {loaded.geoip.describe()}")  # type: ignore[union-attr]
        return 0
    # A rebuild needs only the state folder: it is how a damaged built-in database is replaced.
    settings = read_settings(Checker(), args.config)
    if settings is None:
        print(f"{args.config}/dnsbalance.yaml cannot be read: no state folder to rebuild into", file=sys.stderr)
        return 1
    try:
        built = rebuild(args.source, settings.state_dir)
    except RebuildError as exc:
        print(f"not rebuilt (the database in use is unchanged): {exc}", file=sys.stderr)
        return 1
    print(f"wrote {built.path}: {built.countries} countries, {built.ranges} ranges from {args.source} (data of "
          f"{built.generated}), {built.size} bytes; {built.checked} addresses looked up and found where the "
          f"sources place them")
    if settings.geoip.database == "builtin":
        print("`geoip.database: builtin` uses it from the next start or `dnsbalance reload` on "
              f"(instead of {builtin_database()})")
    else:
        print(f"note: this configuration uses geoip.database: {settings.geoip.database}, not the built-in one")
    return 0
