"""RRSIGs made as a pure function of (key, RRset, window) (RFC 4034 3.1.8.1, RFC 6605, RFC 8080), and a
Signer that remembers what it signed, by RRset content and window, so a table rebuild signs only the RRsets
that changed. Used by the compiler in the supervisor's table build only: answerers never sign."""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dnsbalance.configuration.model import DNSSECSettings
from dnsbalance.dnssec.keys import SigningKey
from dnsbalance.protocol.codes import DClass
from dnsbalance.protocol.renderer import wire_name

INCEPTION_SLACK = 3600  # signatures valid from an hour back: resolvers with a slow clock still accept them


@dataclass(frozen=True)
class Window:
    """A signature's validity (seconds since the epoch). One per table generation, an input of the table,
    so every answerer of a generation serves the same bytes."""

    inception: int
    expiration: int


def window_at(now: float, settings: DNSSECSettings, previous: Window | None = None) -> Window:
    """The previous window while more than `refresh` of it is left, else a new one from now: a rebuild in
    between reuses every unchanged signature, and signatures are made anew well before they expire."""
    if previous is not None and previous.expiration - now > settings.refresh and previous.inception <= now:
        return previous
    inception = int(now) - INCEPTION_SLACK
    return Window(inception, inception + settings.validity)


def canonical_rrset(owner: bytes, rtype: int, ttl: int, rdatas: tuple[bytes, ...]) -> bytes:
    """The RRs in canonical form and order (RFC 4034 6.2, 6.3): owner lower case, RDATA sorted, no duplicates.
    `rdatas` must already be canonical (names in them lower case and uncompressed)."""
    head = owner + struct.pack("!HHI", rtype, DClass.IN, ttl)
    return b"".join(head + struct.pack("!H", len(r)) + r for r in sorted(set(rdatas)))


@lru_cache(maxsize=1 << 16)
def canonical_name(name: str) -> bytes:
    """A name in canonical wire form (lower case, uncompressed), kept: a build signs many RRsets per owner."""
    return wire_name(name.lower())


def rrsig(key: SigningKey, zone: str, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...],
          window: Window) -> bytes:
    """The RRSIG RDATA over the RRset `owner` (absolute, no trailing dot) `rtype` with these RDATAs."""
    labels = owner.count(".") + 1 if owner else 0
    head = struct.pack("!HBBIIIH", rtype, key.algorithm, labels, ttl, window.expiration, window.inception,
                       key.tag) + canonical_name(zone)
    data = head + canonical_rrset(canonical_name(owner), rtype, ttl, rdatas)
    private = key.private
    if isinstance(private, ed25519.Ed25519PrivateKey):
        signature = private.sign(data)
    else:
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 6605 4: r and s, not DER
    return head + signature


# what a signature is kept by: (owner, type, TTL, sorted RDATA), and the key's DNSKEY when not the signing key's
Cached = tuple[Any, ...]


@dataclass
class Signer:
    """One generation's signing: the key, the window, and the signatures by RRset content (made here or
    carried over from the generation before when the content and window are the same). `others`: the keys
    published besides the signing one around a rollover (keys.KeySet.others), which sign only the RRsets
    that introduce keys (sign_by_all)."""

    key: SigningKey
    zone: str
    window: Window
    previous: dict[Cached, bytes] = field(default_factory=dict)
    made: int = 0  # signatures made for this generation (the rest were reused)
    seconds: float = 0.0  # time spent making them
    cache: dict[Cached, bytes] = field(default_factory=dict)
    others: tuple[tuple[SigningKey, str], ...] = ()
    for_parent: tuple[SigningKey, ...] = ()  # the keys CDS and CDNSKEY name (keys.KeySet.for_parent)

    def sign(self, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...], key: SigningKey | None = None) -> bytes:
        content = (owner.lower(), rtype, ttl, tuple(sorted(set(rdatas))))
        cached: Cached = content if key is None else (*content, key.dnskey)  # another key's signature: apart
        found = self.cache.get(cached) or self.previous.get(cached)
        if found is None:
            started = time.perf_counter()
            found = rrsig(key or self.key, self.zone, owner, rtype, ttl, rdatas, self.window)
            self.seconds += time.perf_counter() - started
            self.made += 1
        self.cache[cached] = found
        return found

    def sign_by_all(self, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """One RRSIG per published key (the DNSKEY, CDS and CDNSKEY RRsets around a rollover: a resolver that
        trusts any of the keys through the parent's DS validates the key set)."""
        return (self.sign(owner, rtype, ttl, rdatas), *(self.sign(owner, rtype, ttl, rdatas, key)
                                                         for key, _ in self.others))

    def next(self, now: float, settings: DNSSECSettings, key: SigningKey | None = None,
             others: tuple[tuple[SigningKey, str], ...] | None = None,
             for_parent: tuple[SigningKey, ...] | None = None) -> Signer:
        """The next generation's signer: same window and remembered signatures while they last."""
        key = key or self.key
        others = self.others if others is None else others
        window = window_at(now, settings, self.window)
        keep = window == self.window and key.dnskey == self.key.dnskey  # the file is read anew each build
        return Signer(key, self.zone, window, self.cache if keep else {}, others=others,
                      for_parent=self.for_parent if for_parent is None else for_parent)
