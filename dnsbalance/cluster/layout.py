"""Where things live in etcd, under the cluster's prefix (default /dnsbalance/ZONE/):

    PREFIX votes/INSTANCE        one value per instance: its raw observations, served state and configuration
                                 digest (vote.py), under a lease of about three intervals: liveness
    PREFIX reference/ARCHIVE     the push reference of one archive (shared_reference.py), moved by compare-and-swap
    PREFIX drains/TARGET         an operator's drain of a mirror or relay (drains.py), no lease: until undrained
    PREFIX dnssec/FILE           the zone's DNSSEC key set (keystore.py): zone.key, next.key, retiring.key and
                                 rollover.json, as a key folder holds them; no lease, changed by transactions only
"""
from __future__ import annotations

VOTES = "votes/"
REFERENCE = "reference/"
DRAINS = "drains/"
DNSSEC = "dnssec/"


def vote_key(prefix: str, instance: str) -> str:
    return f"{prefix}{VOTES}{instance}"


def reference_key(prefix: str, archive: str) -> str:
    return f"{prefix}{REFERENCE}{archive}"


def drain_key(prefix: str, target: str) -> str:
    return f"{prefix}{DRAINS}{target}"


def dnssec_key(prefix: str, name: str) -> str:
    return f"{prefix}{DNSSEC}{name}"


def split(prefix: str, key: str) -> tuple[str, str] | None:
    """(kind folder, name) of a key under the prefix, or None for anything else."""
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix):]
    for folder in (VOTES, REFERENCE, DRAINS, DNSSEC):
        if rest.startswith(folder) and len(rest) > len(folder) and "/" not in rest[len(folder):]:
            return folder, rest[len(folder):]
    return None
