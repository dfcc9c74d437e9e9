"""One instance's value in etcd, pure: its raw observations of the cycle (which targets it saw up, which down),
the targets it serves without (its state after fall/rise: what a starting instance takes over), and the digest of
the configuration it serves. All targets in one compact JSON value, so a cycle is one write whatever the fleet.

A value of the wrong shape, too large, or whose instance is not the one its key names is refused with a reason:
the caller logs it and ignores the value.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

VERSION = 1
MAX_BYTES = 512 * 1024  # about 20,000 targets of 25 characters; etcd's own request limit is 1.5 MiB
MAX_KEY = 300  # one health key (`mirror/archive`, `relay/turn-tls`)
INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Vote:
    instance: str
    digest: str  # of the configuration it serves (member.py: the part every name server shares)
    cycle: int  # its health cycles since start: moves at every publication
    up: frozenset[str]  # targets its own probes saw usable this cycle
    down: frozenset[str]  # ... and not usable
    out: frozenset[str] = frozenset()  # targets it serves without now (after consensus and fall/rise)
    source: str = ""  # where its probes leave from (health.source), for the status page

    def sees(self, key: str) -> bool | None:
        """Up, down, or None when it did not observe `key` (another configuration)."""
        return True if key in self.up else False if key in self.down else None


def encode(vote: Vote) -> bytes:
    return json.dumps({"v": VERSION, "i": vote.instance, "c": vote.digest, "n": vote.cycle, "s": vote.source,
                       "up": sorted(vote.up), "down": sorted(vote.down), "out": sorted(vote.out)},
                      separators=(",", ":")).encode()


class BadVote(ValueError):
    """Why a value was ignored."""


def parse(data: bytes, instance: str) -> Vote:
    """The vote stored under `votes/INSTANCE`, or BadVote saying why it is not one."""
    if len(data) > MAX_BYTES:
        raise BadVote(f"{len(data)} bytes, more than {MAX_BYTES}")
    if not INSTANCE.match(instance):
        raise BadVote("not an instance name")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadVote(f"not JSON ({str(exc)[:60]})") from None
    if not isinstance(raw, dict) or raw.get("v") != VERSION:
        raise BadVote(f"not a version-{VERSION} vote object")
    if raw.get("i") != instance:
        raise BadVote(f"names instance {str(raw.get('i'))[:40]!r}, not the one its key names")
    digest, cycle, source = raw.get("c"), raw.get("n"), raw.get("s", "")
    if not isinstance(digest, str) or len(digest) > 64 or not isinstance(source, str) or len(source) > 64:
        raise BadVote("configuration digest or source of the wrong shape")
    if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 0:
        raise BadVote("cycle count of the wrong shape")
    up, down, out = (_keys(raw.get(name), name) for name in ("up", "down", "out"))
    if up & down:
        raise BadVote("a target both up and down")
    return Vote(instance, digest, cycle, up, down, out, source)


def _keys(value: object, name: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(k, str) and 0 < len(k) <= MAX_KEY for k in value):
        raise BadVote(f"{name}: not a list of target names")
    return frozenset(value)
