"""Command line: serve, check, explain."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Coroutine

from dnsbalance import __version__
from dnsbalance.configuration.load import check_config
from dnsbalance.configuration.names import parse_hostport
from dnsbalance.configuration.problems import Severity
from dnsbalance.ops.addrfile import ImportProblem, import_addr_file
from dnsbalance.ops.explain import explain
from dnsbalance.ops.shares import bent_shares
from dnsbalance.process.supervisor import serve_workers
from dnsbalance.server import serve
from dnsbalance.serving.balancer import Balancer, Loaded, load, log_problems
from dnsbalance.stats.counters import all_totals, pid_file, request_reset, write_pid
from dnsbalance.stats.report import report
from health.cycle import CycleReport, run_cycle
from health.fetch import new_client
from health.report import probe_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnsbalance", description="GeoIP-aware authoritative DNS load balancer")
    parser.add_argument("--version", action="version", version=f"dnsbalance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("--config", type=Path, default=Path("config"), help="configuration folder (default ./config)")
        return sub

    serving = command("serve", "answer DNS queries for the zone")
    serving.add_argument("--listen", action="append", metavar="HOST:PORT",
                     help="listen here instead of the config's listen (repeatable)")
    serving.add_argument("--status", metavar="HOST:PORT",
                         help="status page and /metrics here instead of the config's status (off: none)")
    serving.add_argument("--workers", type=int, default=1, metavar="N",
                     help="N processes answer on the same ports (SO_REUSEPORT); one of them probes (default 1)")
    serving.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    command("check", "report every configuration problem, with file:line")
    command("probe", "run one health cycle now and print its verdicts")
    stats = command("stats", "queries by country and continent, distinct clients, observed shares against weights")
    stats.add_argument("--reset", action="store_true", help="start every count afresh (observed shares too)")
    command("reload", "check the configuration, then tell the running server to load it (SIGHUP)")
    imports = commands.add_parser("import-dnsbalance", help="convert a DNS Balance addr file into a config folder")
    imports.add_argument("addr_file", type=Path, help="DNS Balance $addr_db file")
    imports.add_argument("--zone", required=True, help="the zone the names live in, e.g. cdn.debian.or.jp")
    imports.add_argument("--out", type=Path, default=Path("config"), help="folder to write (default ./config)")
    why = command("explain", "show the table, entries and weights a client gets for a name, and why")
    why.add_argument("client", help="client (or client subnet) IP address")
    why.add_argument("name", help="owner name, absolute or relative to the zone")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"serve": _serve, "check": _check, "explain": _explain, "probe": _probe, "stats": _stats,
                "reload": _reload, "import-dnsbalance": _import}
    return commands[args.command](args)


def _load_or_report(directory: Path) -> Loaded | None:
    """The configuration, or None after printing its problems to stderr."""
    loaded, problems = load(directory)
    if loaded is None:
        for problem in problems:
            print(problem, file=sys.stderr)
    return loaded


def _check(args: argparse.Namespace) -> int:
    loaded, problems = load(args.config)
    for problem in problems:
        print(problem)
    errors = sum(p.severity is Severity.ERROR for p in problems)
    if loaded is None or errors:
        print(f"{errors} error(s), {len(problems) - errors} warning(s)", file=sys.stderr)
        return 1
    config = loaded.config
    for line in bent_shares(config):  # the operator's min_answers bends these shares: say by how much
        print(line)
    print(f"ok: zone {config.settings.zone}, {len(config.mirrors)} mirrors, {len(config.relays)} relays, "
          f"{len(config.countries)} country and {len(config.continents)} continent tables"
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
    balancer = Balancer(loaded)
    location = loaded.geoip.locate(address)
    for line in explain(loaded.config, balancer.table, balancer.health.view(), location, args.name):
        print(line)
    return 0


def run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed: its UDP and TCP handling costs a fraction of the stock loop's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _serve(args: argparse.Namespace) -> int:
    # Until the event loop installs its handlers, a reload or health signal must not kill the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # its per-run lines drown ours
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
    single = args.workers == 1
    balancer = Balancer(loaded, persist=True, counters="main" if single else None)
    log.info("dnsbalance %s: zone %s, GeoIP %s (%s)", __version__, loaded.config.settings.zone,
             loaded.geoip.path, loaded.geoip.database_type)
    try:
        write_pid(balancer.state_dir)
        if not single:
            return serve_workers(balancer, listen, args.config, args.workers, status_listen)
        run(serve(balancer, listen, args.config, status_listen=status_listen))
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    return 0


def _probe(args: argparse.Namespace) -> int:
    loaded = _load_or_report(args.config)
    if loaded is None:
        return 1
    config = loaded.config

    async def once() -> CycleReport:
        client = new_client(config.settings.health.concurrency)
        try:
            return await run_cycle(config, client, config.settings.health.concurrency)
        finally:
            await client.aclose()

    report = asyncio.run(once())
    for line in probe_table(report):
        print(line)
    return 1 if report.all_failed("mirror") or report.all_failed("relay") else 0


def _stats(args: argparse.Namespace) -> int:
    loaded = _load_or_report(args.config)
    if loaded is None:
        return 1
    config = loaded.config
    counters = config.settings.state_dir / "counters"
    if args.reset:
        request_reset(counters)
        print(f"counters reset: every serving process starts counting afresh within seconds ({counters})")
        return 0
    table = Balancer(loaded).table  # health-adjusted, as the server draws (saved health state)
    for line in report(config, all_totals(counters), table):
        print(line)
    return 0


def _reload(args: argparse.Namespace) -> int:
    loaded, problems = load(args.config)
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity is Severity.ERROR else sys.stdout)
    if loaded is None:
        print("reload refused: the configuration has errors; the running server keeps its own", file=sys.stderr)
        return 1
    path = pid_file(loaded.config.settings.state_dir)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        print(f"no running server found through {path}: {exc}", file=sys.stderr)
        return 1
    print(f"configuration checked; sent SIGHUP to dnsbalance (pid {pid})")
    return 0


def _import(args: argparse.Namespace) -> int:
    try:
        written = import_addr_file(args.addr_file, args.zone, args.out)
    except ImportProblem as exc:
        print(f"{args.addr_file}:{exc.line}: {exc.detail}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    config, problems = check_config(args.out)
    for problem in problems:
        print(problem)
    return 0 if config is not None else 1
