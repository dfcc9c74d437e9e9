"""`dnsbalance check` on a signed zone: an error for a key that cannot sign, warnings when signatures could expire
before they are made again (the configuration's refresh against its TTLs, and the state the running server
wrote). Read by `check` only."""
from __future__ import annotations

import json
from pathlib import Path

from dnsbalance.configuration.model import Settings
from dnsbalance.configuration.problems import Problem, Severity
from dnsbalance.configuration.settings_file import FILE
from dnsbalance.configuration.yamlpos import PosDict, YamlSyntaxError, load_yaml
from dnsbalance.dnssec.keys import KeyProblem, load_keys
from dnsbalance.dnssec.timing import expiry_warnings
from dnsbalance.statefiles import StateFolder


def _line(path: Path, inner: str | None = None) -> int:
    """The line of `inner:` under `dnssec:` in dnsbalance.yaml, else of `dnssec:`, else 1."""
    try:
        top = load_yaml(path)
    except (YamlSyntaxError, OSError):
        return 1
    if not isinstance(top, PosDict) or "dnssec" not in top:
        return 1
    section = top["dnssec"]
    if inner is not None and isinstance(section, PosDict) and inner in section:
        return section.line_of(inner)
    return top.line_of("dnssec")


def dnssec_problems(directory: Path, settings: Settings, now: float) -> list[Problem]:
    """Warnings (never errors: the zone still serves) about the signatures' expiry; an error for a key folder
    `serve` would refuse to start with (no cluster: a cluster's server adopts the cluster's key)."""
    if not settings.dnssec.sign:
        return []
    path = directory / FILE
    key_problems: list[Problem] = []
    if settings.cluster is None:
        try:
            load_keys(settings.key_dir)
        except KeyProblem as exc:
            key_problems.append(Problem(path, _line(path), f"dnssec: {exc} (`serve` refuses to start with it; a "
                                                           "running server signs on with the key it has)"))
    state = None
    try:
        read = json.loads(StateFolder(settings.state_dir).signing.read_text())
        state = read if isinstance(read, dict) else None
    except (OSError, ValueError):
        pass  # no server has signed here yet
    return key_problems + [Problem(path, _line(path, "refresh"), message, Severity.WARNING)
                           for message in expiry_warnings(settings, state, now)]


def cluster_key_problems(directory: Path, messages: list[str]) -> list[Problem]:
    """The cluster's key comparison (cluster/keystore.py check_warnings) as warnings at the `dnssec:` line."""
    path = directory / FILE
    line = _line(path)
    return [Problem(path, line, message, Severity.WARNING) for message in messages]
