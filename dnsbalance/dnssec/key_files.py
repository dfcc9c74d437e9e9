"""The zone's key files as a value, file name -> bytes: what a key folder holds (key_folder.py) and what a cluster
keeps in etcd (`PREFIX dnssec/NAME`, cluster/keystore.py). Pure: read them as a KeySet, describe them by their
tags, and decide what a name server does with its local copy given the cluster's (`reconcile`).

Why a copy that came from the cluster is marked (key_folder.py's marker, `is_copy` here): a copy is a cache of the
cluster's keys and follows them whatever they became meanwhile (a server that was down through a whole rollover
holds a key the cluster has retired), while a key made or put there by hand that the cluster does not have must
never sign: a resolver asking this server would get answers that fail against the parent's DS.
"""
from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dnsbalance.dnssec.keys import KEY_FILE, NEXT_FILE, RETIRING_FILE, KeyProblem, KeySet, SigningKey, from_pem

ROLLOVER_FILE = "rollover.json"  # a rollover's record: when its steps were taken (rollover.py)
KEY_NAMES = (KEY_FILE, NEXT_FILE, RETIRING_FILE)
NAMES = (*KEY_NAMES, ROLLOVER_FILE)  # every file of a key set, in etcd as in the folder
KeyFiles = Mapping[str, bytes]
Where = Callable[[str], str]  # a file's name -> where it is, for messages (a path, or the cluster's key)


def key_set(files: KeyFiles, where: Where) -> KeySet | None:
    """The keys the files hold; None without a signing key; KeyProblem for a damaged one (naming where)."""
    if KEY_FILE not in files:
        return None

    def one(name: str) -> SigningKey | None:
        return from_pem(files[name], where(name)) if name in files else None
    signing = one(KEY_FILE)
    assert signing is not None
    return KeySet(signing, one(NEXT_FILE), one(RETIRING_FILE))


def only_keys(files: KeyFiles) -> dict[str, bytes]:
    return {name: bytes(files[name]) for name in NAMES if name in files}


def digest(files: KeyFiles) -> str:
    """Of the key files (not the rollover record): what a copy's marker holds, to tell a copy from a hand edit."""
    hashed = hashlib.sha256()
    for name in KEY_NAMES:
        if name in files:
            hashed.update(f"{name}\0{len(files[name])}\0".encode() + files[name])
    return hashed.hexdigest()


def describe(keys: KeySet | None) -> str:
    """'tag 123' or 'tag 123 (signs), next 456': tags only, never a key."""
    if keys is None:
        return "no key"
    others = "".join(f", {role} {key.tag}" for key, role in keys.others)
    return f"tag {keys.signing.tag}" + (f" (signs){others}" if others else "")


def tags(keys: KeySet | None) -> list[int]:
    return [] if keys is None else [key.tag for key in keys.published]


class Action(enum.Enum):
    NOTHING = "nothing"  # no key in the cluster nor here
    SEED = "seed"  # the cluster has no key: this server's becomes the cluster's (create-only)
    WRITE = "write"  # the local copy becomes the cluster's key set (adopted, or followed)
    KEEP = "keep"  # the local copy is the cluster's key set already
    REFUSE = "refuse"  # the local key is not one the cluster has: never sign with it


@dataclass(frozen=True)
class Reconciled:
    action: Action
    message: str
    cluster: KeySet | None = None  # the cluster's keys as read
    local: KeySet | None = None  # the key folder's, when readable


def reconcile(local: KeyFiles, local_is_copy: bool, cluster: KeyFiles, here: Where, there: Where) -> Reconciled:
    """What to do with the key folder (`local`, a marked copy of the cluster's or not) given the cluster's key set.
    KeyProblem when the cluster's key is damaged (nothing can be decided then)."""
    theirs = key_set(cluster, there)
    try:
        ours = key_set(local, here)
        damaged = ""
    except KeyProblem as exc:
        ours, damaged = None, str(exc)
    if theirs is None:
        if ours is not None:
            return Reconciled(Action.SEED, f"the cluster has no DNSSEC key yet: this server's ({describe(ours)}) "
                                           f"becomes the cluster's", None, ours)
        if damaged:
            return Reconciled(Action.REFUSE, f"{damaged}, and the cluster has no key either")
        return Reconciled(Action.NOTHING, "no DNSSEC key in the cluster nor in the key folder: run `dnsbalance "
                                          "dnssec keygen --config DIR` (once, on any name server)")
    if only_keys(local) == only_keys(cluster):
        return Reconciled(Action.KEEP, f"the key folder holds the cluster's keys ({describe(theirs)})", theirs, ours)
    if ours is None and not damaged:
        return Reconciled(Action.WRITE, f"adopted the cluster's key {describe(theirs)}", theirs, ours)
    if local_is_copy:
        return Reconciled(Action.WRITE, f"the cluster's keys changed ({describe(ours)} -> {describe(theirs)}): "
                                        f"the local copy follows", theirs, ours)
    if ours is not None and ours.signing.dnskey in {key.dnskey for key in theirs.published}:
        return Reconciled(Action.WRITE, f"the key folder's key (tag {ours.signing.tag}) is the cluster's: it "
                                        f"becomes a copy of the cluster's keys ({describe(theirs)})", theirs, ours)
    if ours is None:  # damaged
        mine = f"{damaged}; the cluster's key is tag {theirs.signing.tag} ({there(KEY_FILE)})"
    else:
        mine = (f"this server's key {here(KEY_FILE)} (tag {ours.signing.tag}) is not the cluster's (tag "
                f"{theirs.signing.tag}, {there(KEY_FILE)}): signing with it would make validating resolvers that "
                f"ask this server fail against the parent's DS")
    return Reconciled(Action.REFUSE, f"{mine}. Fix: `dnsbalance dnssec fetch --force --config DIR` "
                                     f"(sets this key aside in the key folder's replaced-* and copies the "
                                     f"cluster's), or move the key folder away and start again (the server adopts "
                                     f"the cluster's key)", theirs, ours)
