"""`dnsbalance drain MIRROR [--for D] [--reason TEXT]`, `dnsbalance undrain MIRROR`, and `dnsbalance drain` alone
(the drains in force): the command side of dnsbalance/drains.py. A drain is written to the state folder (through
etcd first when `cluster:` is set, so every name server applies it), logged in the operators' event log, and the
command waits until the running server answers without the mirror (or says there is no server to wait for).

Exit codes: 0 done (or nothing to do), 1 not done (the configuration, the state folder or etcd failed), 2 a name
that is no mirror or relay (with a "did you mean"), 4 the running server did not put it in service in time.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dnsbalance import drains as operator_drains
from dnsbalance.configuration.checker import Checker
from dnsbalance.configuration.model import Settings
from dnsbalance.configuration.settings_file import read_settings
from dnsbalance.configuration.suggest import did_you_mean
from dnsbalance.drains import Drain
from dnsbalance.process.instance import is_dnsbalance, running_pid
from dnsbalance.serving.inputs import load
from dnsbalance.serving.served_copy import load_copy
from dnsbalance.statefiles import StateFolder
from dnsbalance.health import events as health_events

WAIT = 10.0  # seconds to wait for the running server to put a drain in service


def add_drain_commands(command: Callable[[str, str], argparse.ArgumentParser],
                       duration: Callable[[str], float]) -> None:
    drain = command("drain", "take a mirror or relay out of every answer now, without editing the configuration "
                             "(no MIRROR: list the drains in force)")
    drain.add_argument("target", nargs="?", metavar="MIRROR", help="a mirror or relay name of the configuration")
    drain.add_argument("--for", dest="duration", type=duration, metavar="DURATION",
                       help="end the drain by itself after DURATION (90s, 30m, 6h, 2d, 1w); default: until undrain")
    drain.add_argument("--reason", default="", metavar="TEXT", help="why, shown on the status page and in events")
    drain.add_argument("--timeout", type=float, default=WAIT, metavar="SECONDS",
                       help=f"seconds to wait for the running server to apply it (default {WAIT:g})")
    undrain = command("undrain", "put a drained mirror or relay back in the answers")
    undrain.add_argument("target", metavar="MIRROR")
    undrain.add_argument("--timeout", type=float, default=WAIT, metavar="SECONDS",
                         help=f"seconds to wait for the running server to apply it (default {WAIT:g})")


def drain_commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    return {"drain": _drain, "undrain": _undrain}


def _settings(config: Path) -> Settings | None:
    settings = read_settings(Checker(), config)
    if settings is None:
        print(f"{config}/dnsbalance.yaml cannot be read: no state folder to keep drains in (`dnsbalance check`)",
              file=sys.stderr)
    return settings


def known_names(config: Path, state: StateFolder) -> set[str] | None:
    """The mirror and relay names of the configuration in service and of the one on disk (either may lack a
    name the other has: a mirror being added, or being retired); None when neither can be read."""
    names: set[str] = set()
    found = False
    try:
        served, _ = load_copy(state.served_config)
        names |= {*served.mirrors, *served.relays}
        found = True
    except (OSError, ValueError):
        pass
    loaded, problems = load(config)
    if loaded is not None:
        names |= {*loaded.config.mirrors, *loaded.config.relays}
        found = True
    elif not found:
        for problem in problems:
            print(problem, file=sys.stderr)
    return names if found else None


def _known(config: Path, state: StateFolder, target: str) -> int | None:
    """None when `target` names a mirror or relay; else the exit code, after saying so."""
    names = known_names(config, state)
    if names is None:
        print("no configuration to check the name against (see above); nothing changed", file=sys.stderr)
        return 1
    if target in names:
        return None
    hint = did_you_mean(target, names) or f" (there are {len(names)}: the status page lists them)"
    print(f"'{target}' is no mirror or relay of the configuration{hint}", file=sys.stderr)
    return 2


def _drain(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    if settings is None:
        return 1
    state = StateFolder(settings.state_dir)
    if args.target is None:
        return _list(state)
    bad = _known(args.config, state, args.target)
    if bad is not None:
        return bad
    if args.duration is not None and not 0 < args.duration <= operator_drains.MAX_SECONDS:
        print("--for: a duration above zero and at most ten years (90s, 30m, 6h, 2w)", file=sys.stderr)
        return 2
    now = time.time()
    drain = Drain(args.target, " ".join(args.reason.split())[:operator_drains.REASON_LIMIT], operator_drains.who(),
                  now, now + args.duration if args.duration is not None else None)
    shared = _through_cluster(settings, drain, args.target)
    if shared is not None:
        return shared
    try:
        operator_drains.change(state.drains, lambda found: {**found, drain.target: drain})
    except (OSError, operator_drains.BadDrains) as exc:
        print(f"not drained: {state.drains}: {exc}", file=sys.stderr)
        return 1
    health_events.note(state.operations, health_events.Event(
        now, drain.target, False, drain.describe(), health_events.Kind.DRAIN, drain.by, drain.until))
    _hand_over(state)
    print(f"{drain.target} {drain.describe()}")
    for line in consequences(args.config, drain.target):
        print(f"warning: {line}", file=sys.stderr)
    return _await(state, drain.target, True, args.timeout)


def _undrain(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    if settings is None:
        return 1
    state = StateFolder(settings.state_dir)
    gone: list[Drain] = []

    def remove(found: dict[str, Drain]) -> dict[str, Drain]:
        if args.target in found:
            gone.append(found.pop(args.target))
        return found

    shared = _through_cluster(settings, None, args.target)
    if shared is not None:
        return shared
    try:
        operator_drains.change(state.drains, remove)
    except (OSError, operator_drains.BadDrains) as exc:
        print(f"not undrained: {state.drains}: {exc}", file=sys.stderr)
        return 1
    if not gone:
        bad = _known(args.config, state, args.target)
        if bad is not None:
            return bad
        print(f"{args.target} is not drained by `dnsbalance drain`; nothing changed (a `state: down` or priority "
              "10000 is in the configuration)")
        return 0
    who = operator_drains.who()
    health_events.note(state.operations, health_events.Event(
        time.time(), args.target, True, f"undrained by {who} (was {gone[0].describe()})",
        health_events.Kind.UNDRAIN, who))
    _hand_over(state)
    print(f"{args.target} undrained (was {gone[0].describe()})")
    return _await(state, args.target, False, args.timeout)


def consequences(config: Path, target: str) -> list[str]:
    """What the drain costs clients where it is serious: names the default table (every client's last stop)
    served and no longer can, so its clients get no address (NODATA) or a failing-open answer. Built as the server
    builds its table (saved health, the drains in force); nothing when the configuration cannot be read."""
    from dnsbalance.ranking.build import build_table
    from dnsbalance.health import state as health_state

    loaded, _ = load(config)
    if loaded is None:
        return []
    state = StateFolder(loaded.config.settings.state_dir)
    try:
        drained = frozenset(operator_drains.active(operator_drains.read(state.drains), time.time()))
    except (OSError, operator_drains.BadDrains):
        return []
    view = health_state.load(state.health).view()
    before = build_table(loaded.config, view, 0, 0, drained=drained - {target}).default
    after = build_table(loaded.config, view, 0, 0, drained=drained).default
    lines = []
    for name, rtype in sorted(set(before.usable) - set(after.usable), key=lambda k: (k[0], k[1].name)):
        if (name, rtype) in after.fail_open:
            what = "it fails open there (its configured entries that are not drained, health ignored)"
        else:
            what = "they get no address (NODATA)"
        lines.append(f"{name} {rtype.name}: the default table has nothing usable left, for the clients no other "
                     f"table serves: {what} until `dnsbalance undrain {target}`")
    return lines


def _hand_over(state: StateFolder) -> None:
    ops = state.operations
    operator_drains.hand_over([state.drains, state.drains.with_name(state.drains.name + ".lock"), ops,
                               ops.with_name(ops.name + ".1"), ops.with_name(ops.name + ".lock")])


def _list(state: StateFolder) -> int:
    try:
        found = operator_drains.read(state.drains)
    except (OSError, operator_drains.BadDrains) as exc:
        print(f"{state.drains}: {exc}", file=sys.stderr)
        return 1
    now = time.time()
    live = operator_drains.active(found, now)
    for name, drain in sorted(live.items()):
        print(f"{name}  {drain.describe()}, since {operator_drains.clock(drain.since)}")
    if not live:
        print(f"no drains in force ({state.drains})")
    return 0


def _served_drains(state: StateFolder) -> tuple[int | None, int | None, set[str]]:
    """(pid, generation, drained) of the table every answering process of the running server answers from."""
    try:
        data = json.loads(state.in_service.read_text(encoding="utf-8"))
        return int(data.get("pid", 0)) or None, int(data["generation"]), set(data.get("drained", []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None, set()


def _await(state: StateFolder, target: str, drained: bool, timeout: float) -> int:
    """Wait until the running server's table has the drain (or no longer has it)."""
    pid = running_pid(state)
    if pid is None or not is_dnsbalance(pid):
        print(f"no running dnsbalance holds {state.lock}: in force from its next start")
        return 0
    started = time.monotonic()
    deadline = started + timeout
    while True:
        served_pid, generation, names = _served_drains(state)
        if served_pid == pid and (target in names) == drained:
            done = "leaves it out of every answer" if drained else "answers with it again (as health allows)"
            print(f"in service after {time.monotonic() - started:.1f}s: table generation {generation} of dnsbalance "
                  f"(pid {pid}) {done}")
            return 0
        if time.monotonic() > deadline:
            print(f"dnsbalance (pid {pid}) did not put it in service within {timeout:g}s (its log may say why); "
                  f"the drain stays in {state.drains}", file=sys.stderr)
            return 4
        time.sleep(0.05)


def _through_cluster(settings: Settings, drain: Drain | None, target: str) -> int | None:
    """With `cluster:`: the drain (None: the undrain) goes to etcd first, from which every name server's server
    follows it; then on locally (this instance applies it at once). None: go on; else the exit code (etcd
    could not be told: nothing is changed anywhere)."""
    if settings.cluster is None:
        return None
    from dnsbalance.cluster.drains import publish

    return publish(settings, drain, target)
