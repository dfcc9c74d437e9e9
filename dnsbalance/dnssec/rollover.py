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

Each step is pure over the key set's files (key_files.py): `start_files`, `switch_files`, `finish_files` give the
files after the step. `start`, `switch`, `finish` apply them to a key folder; with `cluster:`, cluster/keystore.py
applies them to the cluster's keys in etcd in one transaction, the waits counted from the cluster's record.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dnsbalance.configuration.model import Algorithm, Settings
from dnsbalance.dnssec import key_folder
from dnsbalance.dnssec.key_files import ROLLOVER_FILE, KeyFiles, Where, key_set
from dnsbalance.dnssec.keys import (
    KEY_FILE,
    NEXT_FILE,
    RETIRING_FILE,
    KeyProblem,
    SigningKey,
    from_pem,
    generate,
    pem_of,
)
from dnsbalance.dnssec.timing import RESIGN_CHECK, longest_ttl, when

STATE_FILE = ROLLOVER_FILE


@dataclass(frozen=True)
class Step:
    """What a step did, for the command to print."""

    message: str
    key: SigningKey


def state_of(files: KeyFiles) -> dict[str, float]:
    """The record's step times; {} when there is none or it cannot be read."""
    try:
        found = json.loads(files[ROLLOVER_FILE])
    except (KeyError, ValueError, UnicodeDecodeError):
        return {}
    return {k: float(v) for k, v in found.items() if isinstance(v, int | float)} if isinstance(found, dict) else {}


def record(state: Mapping[str, float]) -> bytes:
    return (json.dumps(dict(state)) + "\n").encode()


def propagation(settings: Settings) -> float:
    """A margin for every name server of the zone to serve a step: the command reloads the server of this
    host at once; the others follow the cluster's keys within seconds (`cluster:`), or are reloaded by their
    operators (their key folders are copies of this one)."""
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


def start_files(files: KeyFiles, algorithm: Algorithm, now: float, where: Where,
                force: bool = False) -> tuple[dict[str, bytes], Step]:
    if KEY_FILE not in files:
        raise KeyProblem(f"no key at {where(KEY_FILE)} to roll over: run `dnsbalance dnssec keygen` first")
    for busy in (NEXT_FILE, RETIRING_FILE):
        if busy in files:
            raise KeyProblem(f"a rollover is under way ({where(busy)} exists): switch or finish it first")
    keys = key_set(files, where)  # the signing key must be sound before a second one is made
    if keys is not None and keys.signing.algorithm != algorithm and not force:
        # One key signs the zone's RRsets at a time, so during this rollover the zone would publish a DNSKEY of an
        # algorithm that signs only the key sets: RFC 6840 5.11 validators accept that, but RFC 4035 2.2 asks
        # for signatures by every algorithm of the apex (RFC 6781 4.1.4's algorithm rollover), and validators
        # that harden against downgrades refuse it.
        raise KeyProblem(f"the signing key is algorithm {keys.signing.algorithm.value} "
                         f"({keys.signing.algorithm.name}) and the configuration asks for {algorithm.value} "
                         f"({algorithm.name}): this rollover does not double-sign the zone as an algorithm "
                         f"rollover needs (RFC 6781 4.1.4), which validators hardened against downgrades "
                         f"require; --force to roll over to the new algorithm anyway")
    pem = pem_of(generate(algorithm))
    key = from_pem(pem, where(NEXT_FILE))
    after = {**files, NEXT_FILE: pem, ROLLOVER_FILE: record({"started": now})}
    return after, Step(f"wrote {where(NEXT_FILE)} (mode 0600): key tag {key.tag}, published beside the signing key "
                       f"at the next table build (`dnsbalance reload`); give the parent its DS too (`dnsbalance "
                       f"dnssec ds`), then `dnsbalance dnssec rollover switch`", key)


def switch_files(files: KeyFiles, settings: Settings, now: float, where: Where,
                 force: bool = False) -> tuple[dict[str, bytes], Step]:
    if NEXT_FILE not in files:
        raise KeyProblem(f"no next key ({where(NEXT_FILE)}): `dnsbalance dnssec rollover start` first")
    state = state_of(files)
    if not force:
        _too_early(state.get("started"), publish_wait(settings), now, "switch",
                   "the new DNSKEY may not be in every resolver's cache yet")
    keys = key_set(files, where)
    assert keys is not None and keys.next is not None
    after = {name: data for name, data in files.items() if name != NEXT_FILE}
    after.update({KEY_FILE: files[NEXT_FILE], RETIRING_FILE: files[KEY_FILE],
                  ROLLOVER_FILE: record({**state, "switched": now})})
    return after, Step(f"key tag {keys.next.tag} signs from the next table build (`dnsbalance reload`); the old "
                       f"key stays published. Make sure the parent has the new DS (`dnsbalance dnssec ds`), then "
                       f"`dnsbalance dnssec rollover finish`", keys.next)


def finish_files(files: KeyFiles, settings: Settings, now: float, where: Where,
                 force: bool = False) -> tuple[dict[str, bytes], Step]:
    if RETIRING_FILE not in files:
        raise KeyProblem(f"no retiring key ({where(RETIRING_FILE)}): nothing to finish "
                         f"(`dnsbalance dnssec rollover switch` first)")
    state = state_of(files)
    if not force:
        _too_early(state.get("switched"), retire_wait(settings), now, "finish",
                   "resolvers may still hold signatures made by the old key")
    old = from_pem(files[RETIRING_FILE], where(RETIRING_FILE))
    after = {name: data for name, data in files.items() if name not in (RETIRING_FILE, ROLLOVER_FILE)}
    return after, Step(f"key tag {old.tag} removed: its DNSKEY leaves the zone at the next table build (`dnsbalance "
                       f"reload`); the parent must list only the new DS now", old)


def in_folder(directory: Path) -> Where:
    return lambda name: str(directory / name)


def start(directory: Path, algorithm: Algorithm, now: float, force: bool = False) -> Step:
    before = key_folder.read(directory)
    after, step = start_files(before, algorithm, now, in_folder(directory), force)
    key_folder.write(directory, before, after)
    return step


def switch(directory: Path, settings: Settings, now: float, force: bool = False) -> Step:
    before = key_folder.read(directory)
    after, step = switch_files(before, settings, now, in_folder(directory), force)
    key_folder.write(directory, before, after)  # the retiring key written before the signing key is replaced
    return step


def finish(directory: Path, settings: Settings, now: float, force: bool = False) -> Step:
    before = key_folder.read(directory)
    after, step = finish_files(before, settings, now, in_folder(directory), force)
    key_folder.write(directory, before, after)
    return step
