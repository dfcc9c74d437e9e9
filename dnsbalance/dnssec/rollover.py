"""A rollover of the zone's combined signing key in three steps (RFC 6781 4.1.5, RFC 7583 3.3 for a CSK), each
a rename in the key folder that the server takes up at its next table build (`dnsbalance reload` makes one now):

1. start: a new key is made as next.key and published beside the signing one (DNSKEY has both; the old key
   signs; `ds`, CDS and CDNSKEY list both, so the parent can add the new DS early).
2. switch: once the new DNSKEY has reached every cache (the DNSKEY TTL and a build after the step), the new
   key signs everything; the old one, now retiring.key, stays published. The DNSKEY, CDS and CDNSKEY RRsets are
   signed by both, so a resolver that trusts either DS validates. `ds`, CDS and CDNSKEY: the new key only.
3. finish: once the old key's signatures have left every cache (the longest TTL after the switch) and the
   parent has the new DS, the old key is removed (its file deleted).

The times of the steps are kept in rollover.json beside the keys; a step asked too early is refused with the
time it becomes safe (`--force` overrides, for an operator who knows better, and for tests).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from dnsbalance.configuration.model import Algorithm, Settings
from dnsbalance.dnssec.keys import KEY_FILE, NEXT_FILE, RETIRING_FILE, KeyProblem, SigningKey, keygen, load
from dnsbalance.dnssec.timing import RESIGN_CHECK, longest_ttl, when

STATE_FILE = "rollover.json"


@dataclass(frozen=True)
class Step:
    """What a step did, for the command to print."""

    message: str
    key: SigningKey


def _state(directory: Path) -> dict[str, float]:
    try:
        found = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in found.items() if isinstance(v, int | float)} if isinstance(found, dict) else {}


def _save(directory: Path, state: dict[str, float]) -> None:
    temporary = directory / f".{STATE_FILE}.tmp"
    temporary.write_text(json.dumps(state) + "\n")
    os.replace(temporary, directory / STATE_FILE)


def propagation(settings: Settings) -> float:
    """A margin for every name server of the zone to serve a step: the command reloads the server of this
    host at once; the others are reloaded by their operators (their key folders are copies of this one)."""
    return RESIGN_CHECK


def publish_wait(settings: Settings) -> float:
    """start -> switch: the new DNSKEY published in every cache (RFC 7583 Ipub = Dprp + TTL of DNSKEY)."""
    return propagation(settings) + settings.soa.ttl


def retire_wait(settings: Settings) -> float:
    """switch -> finish: the old key's signatures gone from every cache (Iret = Dprp + the longest TTL)."""
    return propagation(settings) + longest_ttl(settings)


def _too_early(since: float | None, wait: float, now: float, step: str, why: str) -> None:
    if since is None:  # rollover.json lost or damaged: when the step before was taken is unknown, so not safe
        raise KeyProblem(f"cannot tell when the previous step was taken (rollover.json missing or unreadable): "
                         f"{why}; --force to {step} anyway")
    if now < since + wait:
        raise KeyProblem(f"too early to {step}: {why}; safe from {when(since + wait)} "
                         f"(--force to {step} anyway)")


def start(directory: Path, algorithm: Algorithm, now: float) -> Step:
    if not (directory / KEY_FILE).exists():
        raise KeyProblem(f"no key at {directory / KEY_FILE} to roll over: run `dnsbalance dnssec keygen` first")
    for busy in (NEXT_FILE, RETIRING_FILE):
        if (directory / busy).exists():
            raise KeyProblem(f"a rollover is under way ({directory / busy} exists): switch or finish it first")
    load(directory)  # the signing key must be sound before a second one is made
    key = keygen(directory, algorithm, NEXT_FILE)
    _save(directory, {"started": now})
    return Step(f"wrote {directory / NEXT_FILE} (mode 0600): key tag {key.tag}, published beside the signing key "
                f"at the next table build (`dnsbalance reload`); give the parent its DS too (`dnsbalance dnssec "
                f"ds`), then `dnsbalance dnssec rollover switch`", key)


def switch(directory: Path, settings: Settings, now: float, force: bool = False) -> Step:
    if not (directory / NEXT_FILE).exists():
        raise KeyProblem(f"no next key ({directory / NEXT_FILE}): `dnsbalance dnssec rollover start` first")
    state = _state(directory)
    if not force:
        _too_early(state.get("started"), publish_wait(settings), now, "switch",
                   "the new DNSKEY may not be in every resolver's cache yet")
    new = load(directory, NEXT_FILE)
    load(directory)
    # a link, then a rename over the signing key: at every moment there is a zone.key (a crash between two
    # renames would have left none, and a server that would not start)
    retiring = directory / RETIRING_FILE
    retiring.unlink(missing_ok=True)
    os.link(directory / KEY_FILE, retiring)
    os.replace(directory / NEXT_FILE, directory / KEY_FILE)
    _save(directory, {**state, "switched": now})
    return Step(f"key tag {new.tag} signs from the next table build (`dnsbalance reload`); the old key stays "
                f"published. Make sure the parent has the new DS (`dnsbalance dnssec ds`), then `dnsbalance "
                f"dnssec rollover finish`", new)


def finish(directory: Path, settings: Settings, now: float, force: bool = False) -> Step:
    if not (directory / RETIRING_FILE).exists():
        raise KeyProblem(f"no retiring key ({directory / RETIRING_FILE}): nothing to finish "
                         f"(`dnsbalance dnssec rollover switch` first)")
    state = _state(directory)
    if not force:
        _too_early(state.get("switched"), retire_wait(settings), now, "finish",
                   "resolvers may still hold signatures made by the old key")
    old = load(directory, RETIRING_FILE)
    (directory / RETIRING_FILE).unlink()
    (directory / STATE_FILE).unlink(missing_ok=True)
    return Step(f"key tag {old.tag} removed: its DNSKEY leaves the zone at the next table build (`dnsbalance "
                f"reload`); the parent must list only the new DS now", old)
