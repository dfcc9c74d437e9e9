"""RRSIGs made as a pure function of (key, RRset, window) (RFC 4034 3.1.8.1, RFC 6605, RFC 8080), and a
Signer that remembers what it signed, by RRset content and window, so a table rebuild signs only the RRsets
that changed. Used by the compiler in the supervisor's table build only: answerers never sign."""
from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dnsbalance.configuration.model import DNSSECSettings
from dnsbalance.dnssec.keys import PrivateKey, SigningKey
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
    `rdatas` must already be canonical (names in them lower case and uncompressed), sorted and distinct
    (`distinct`)."""
    head = owner + _TYPE_CLASS_TTL.pack(rtype, DClass.IN, ttl)
    return b"".join([head + (_LENGTHS[len(r)] if len(r) < 256 else _LENGTH.pack(len(r))) + r for r in rdatas])


_TYPE_CLASS_TTL = struct.Struct("!HHI")
_LENGTH = struct.Struct("!H")
_LENGTHS = tuple(_LENGTH.pack(n) for n in range(256))  # RDLENGTH of the common short RDATA, made once


def distinct(rdatas: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """RDATAs in canonical order without duplicates."""
    return tuple(sorted(set(rdatas)))


@lru_cache(maxsize=1 << 16)
def canonical_name(name: str) -> bytes:
    """A name in canonical wire form (lower case, uncompressed), kept: a build signs many RRsets per owner."""
    return wire_name(name.lower())


ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # one instance: made per signature it was a tenth of the Python work


def signing_input(key: SigningKey, zone: str, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...],
                  window: Window) -> tuple[bytes, bytes]:
    """The RRSIG RDATA less its signature, and the data signed (that and the RRset in canonical form).
    `rdatas` distinct and in canonical order (`distinct`)."""
    labels = owner.count(".") + 1 if owner else 0
    head = _RRSIG_FIELDS.pack(rtype, key.algorithm, labels, ttl) + _signer_fields(key.tag, zone, window)
    return head, head + canonical_rrset(canonical_name(owner), rtype, ttl, rdatas)


_RRSIG_FIELDS = struct.Struct("!HBBI")  # type covered, algorithm, labels, original TTL


@lru_cache(maxsize=64)
def _signer_fields(tag: int, zone: str, window: Window) -> bytes:
    """The RRSIG fields that are the same for every RRset of a generation: expiration, inception, key tag, signer.
    (Kept by the key's tag, not the key: a cache holds no private key.)"""
    return struct.pack("!IIH", window.expiration, window.inception, tag) + canonical_name(zone)


def signature_of(private: PrivateKey, data: bytes) -> bytes:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(data)
    r, s = decode_dss_signature(private.sign(data, ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 6605 4: r and s, not DER


def rrsig(key: SigningKey, zone: str, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...],
          window: Window) -> bytes:
    """The RRSIG RDATA over the RRset `owner` (absolute, no trailing dot) `rtype` with these RDATAs."""
    head, data = signing_input(key, zone, owner, rtype, ttl, distinct(rdatas), window)
    return head + signature_of(key.private, data)


def signing_threads() -> int:
    """Threads that sign a build's RRsets: one per core this process may run on. OpenSSL signs with the GIL
    released, so they sign side by side. They start once the build has collected what to sign: started while it
    collects, they waited for the GIL after every signature (the collecting thread holds it) and were slower
    than one thread."""
    return max(1, len(os.sched_getaffinity(0)))


CHUNK = 256  # fewer RRsets than this to sign: the build's thread signs them alone (a rebuild's usual few)


# what a signature is kept by: (owner, type, TTL, sorted RDATA), and the key's DNSKEY when not the signing key's
Cached = tuple[Any, ...]


# what a signature is asked for: the content it is kept by, the key that signs, the RRSIG RDATA less its
# signature and the data to sign (made by the build's thread: a signing thread only signs, mostly without the GIL)
Request = tuple[Cached, PrivateKey, bytes, bytes]


@dataclass
class Signer:
    """One generation's signing: the key, the window, and the signatures by RRset content (made here or
    carried over from the generation before when the content and window are the same). `others`: the keys
    published besides the signing one around a rollover (keys.KeySet.others), which sign only the RRsets
    that introduce keys (request_by_all).

    A build asks for signatures with request() (which queues the RRsets not yet signed), then finish() makes
    them (in signing threads when there are many), and signature() reads one. No thread outlives finish(): the
    supervisor forks answerers after the build."""

    key: SigningKey
    zone: str
    window: Window
    previous: dict[Cached, bytes] = field(default_factory=dict)
    made: int = 0  # signatures made for this generation (the rest were reused)
    seconds: float = 0.0  # time spent making them, summed over the signing threads
    cache: dict[Cached, bytes] = field(default_factory=dict)
    others: tuple[tuple[SigningKey, str], ...] = ()
    for_parent: tuple[SigningKey, ...] = ()  # the keys CDS and CDNSKEY name (keys.KeySet.for_parent)
    threads: int = field(default_factory=signing_threads)
    queued: list[Request] = field(default_factory=list, repr=False)

    def request(self, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...],
                key: SigningKey | None = None) -> Cached:
        """What the RRset's signature is kept by (for signature(), after finish()); queued for signing unless
        this generation or the one before has it."""
        rdatas = distinct(rdatas)
        content = (owner.lower(), rtype, ttl, rdatas)
        cached: Cached = content if key is None else (*content, key.dnskey)  # another key's signature: apart
        if cached in self.cache:
            return cached
        found = self.previous.get(cached)
        if found:  # (b"": asked for by a build that failed before finishing)
            self.cache[cached] = found
            return cached
        self.cache[cached] = b""  # made by finish()
        key = key or self.key
        self.queued.append((cached, key.private, *signing_input(key, self.zone, owner, rtype, ttl, rdatas,
                                                                self.window)))
        return cached

    def _store(self, made: list[tuple[Cached, bytes]], seconds: float) -> None:
        self.cache.update(made)
        self.made += len(made)
        self.seconds += seconds

    def finish(self) -> None:
        """Every requested signature made: the queue cut in `threads` shares, the build's thread signing one and
        daemon threads the others (a stop never waits for them), all joined before this returns."""
        queued, self.queued = self.queued, []
        if self.threads <= 1 or len(queued) < CHUNK:
            self._store(*_sign_chunk(queued))
            return
        size = -(-len(queued) // self.threads)
        shares = [queued[at : at + size] for at in range(0, len(queued), size)]
        done: list[tuple[list[tuple[Cached, bytes]], float] | BaseException | None] = [None] * len(shares)

        def sign_share(index: int) -> None:
            try:
                done[index] = _sign_chunk(shares[index])
            except BaseException as exc:  # noqa: BLE001 - handed to the build's thread, which raises it
                done[index] = exc

        helpers = [threading.Thread(target=sign_share, args=(i,), name="dnssec-sign", daemon=True)
                   for i in range(1, len(shares))]
        for helper in helpers:
            helper.start()
        sign_share(0)
        for helper in helpers:
            helper.join()
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
            assert outcome is not None
            self._store(*outcome)

    def keep(self, contents: Iterable[Cached], signatures: Mapping[Cached, bytes]) -> None:
        """Signatures taken whole from the generation before (its ZoneSignatures), remembered for the next."""
        for cached in contents:
            self.cache[cached] = signatures[cached]

    def signature(self, cached: Cached) -> bytes:
        found = self.cache[cached]
        assert found, "signature() before finish()"
        return found

    def sign(self, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...], key: SigningKey | None = None) -> bytes:
        """One RRset's signature now (request, finish and read)."""
        cached = self.request(owner, rtype, ttl, rdatas, key)
        self.finish()
        return self.signature(cached)

    def request_by_all(self, owner: str, rtype: int, ttl: int, rdatas: tuple[bytes, ...]) -> tuple[Cached, ...]:
        """One RRSIG per published key (the DNSKEY, CDS and CDNSKEY RRsets around a rollover: a resolver that
        trusts any of the keys through the parent's DS validates the key set)."""
        return (self.request(owner, rtype, ttl, rdatas), *(self.request(owner, rtype, ttl, rdatas, key)
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
                      for_parent=self.for_parent if for_parent is None else for_parent, threads=self.threads)


def _sign_chunk(chunk: list[Request]) -> tuple[list[tuple[Cached, bytes]], float]:
    """A chunk's signatures, and the time they took (in a signing thread)."""
    started = time.perf_counter()
    made = [(cached, head + signature_of(private, data)) for cached, private, head, data in chunk]
    return made, time.perf_counter() - started
