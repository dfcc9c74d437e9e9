"""Can the server keep its state where `state_dir` says? Asked by `dnsbalance check` (and so by the systemd
unit's ExecStartPre, which runs as the server's user inside its sandbox).

Not part of reading the configuration: `explain`, `stats` and `reload` only read the state folder, and an
operator may run them as a user who cannot write it. A server without a writable state folder still answers,
but without pid file or lock (`reload` cannot find it), health state or counters: `check` must say so.
"""
from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

from dnsbalance.configuration.locations import OLD_DEFAULT_STATE, default_state_dir_ignoring_old, holds_old_state
from dnsbalance.configuration.problems import Problem, Severity
from dnsbalance.configuration.settings_file import FILE
from dnsbalance.configuration.yamlpos import PosDict, YamlSyntaxError, load_yaml
from dnsbalance.statefiles import StateFolder


def state_dir_problems(directory: Path, state_dir: Path) -> list[Problem]:
    """An error at the `state_dir:` line when the folder cannot be created or written by this user; a
    warning when `state_dir:` is left out and the folder's old default (`state/` inside it) holds a server's
    state, which the new default no longer reads."""
    path = directory / FILE
    problems = []
    if _line(path) == 0 and holds_old_state(directory):
        moved = default_state_dir_ignoring_old(directory)
        problems.append(Problem(path, 1, f"state_dir is not set and {directory / OLD_DEFAULT_STATE} holds the state "
                                         "of a server run before the default state folder moved out of the "
                                         "configuration folder (health, lock or DNSSEC key): it is still used; "
                                         f"say `state_dir: state` to keep it there, or stop the server, move it "
                                         f"to {moved} and restart", Severity.WARNING))
    reason = unwritable(state_dir)
    if reason is not None:
        problems.append(Problem(path, _line(path) or 1, f"state_dir {state_dir} {reason} (checked as user "
                                f"{_user()}; the server keeps its pid file, lock, health state and counters there)"))
    return problems


def unwritable(root: Path) -> str | None:
    """Why a server could not keep its state in `root`, or None. Tried for real (a file made and removed at
    once), since permissions alone do not show a read-only mount such as systemd's ProtectSystem=strict."""
    if not root.exists():
        parent = root.parent
        while not parent.exists():  # the server creates the missing folders (mkdir -p)
            parent = parent.parent
        if not parent.is_dir():
            return f"cannot be created: {parent} is not a folder"
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".dnsbalance-check-", dir=parent))
        except OSError as exc:
            return f"cannot be created in {parent}: {exc.strerror}"
        return None
    if not root.is_dir():
        return "is not a folder"
    try:
        with tempfile.TemporaryFile(prefix=".dnsbalance-check-", dir=root):
            pass
    except OSError as exc:
        return f"is not writable: {exc.strerror}"
    state = StateFolder(root)
    for inside in (state.lock, state.counters_dir):  # opened for writing in place, not replaced by a rename
        if inside.exists() and not os.access(inside, os.W_OK | (os.X_OK if inside.is_dir() else 0)):
            return f"holds {inside.name}, which is not writable (left by a server run as another user?)"
    return None


def _line(path: Path) -> int:
    """The line of `state_dir:` in dnsbalance.yaml; 0 when it is left out (the default applies)."""
    try:
        top = load_yaml(path)
    except (YamlSyntaxError, OSError):
        return 1
    return top.line_of("state_dir") if isinstance(top, PosDict) and "state_dir" in top else 0


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name  # not $USER: setpriv, su and sudo may leave it as it was
    except KeyError:  # a uid with no passwd entry (containers)
        return f"uid {os.geteuid()}"
