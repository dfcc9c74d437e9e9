"""RRSIGs made as a pure function of (key, RRset, window) (RFC 4034 3.1.8.1, RFC 6605, RFC 8080), and a
Signer that remembers what it signed, by RRset content and window, so a table rebuild signs only the RRsets
that changed. Used by the compiler in the supervisor's table build only: answerers never sign."""
from __future__ import annotations

import os
import queue
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dnsbalance.configuration.model import DNSSECSettings
from dnsbalance.dnssec.keys import PrivateKey, SigningKey
from dnsbalance.protocol.codes import DClass, RType
from dnsbalance.protocol.renderer import wire_name

try:  # DNSSEC signing in batches with libcrypto (dnsbalance/_sign.c); without it, through `cryptography`
    from dnsbalance import _sign
except ImportError:  # the C extension was not built (no compiler or no libssl-dev at install)
    _sign = None  # type: ignore[assignment]

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
    # valid for `validity` from now (the slack is before now, not taken from the validity: with the shortest
    # validity accepted, an hour, the signatures would otherwise be expired when made)
    return Window(int(now) - INCEPTION_SLACK, int(now) + settings.validity)


def canonical_rrset(owner: bytes, rtype: int, ttl: int, rdatas: tuple[bytes, ...]) -> bytes:
    """The RRs in canonical form and order (RFC 4034 6.2, 6.3): owner lower case, RDATA sorted, no duplicates.
    `rdatas` must already be canonical (names in them lower case and uncompressed), sorted and distinct
    (`distinct`)."""
    head = owner + _TYPE_CLASS_TTL.pack(rtype, DClass.IN, ttl)
    if rtype in _FIXED or len(rdatas) == 1:  # most RRsets a build signs: every record's head the same, one join
        record = head + _LENGTH.pack(len(rdatas[0]))
        return record + record.join(rdatas)
    return b"".join([head + _LENGTH.pack(len(r)) + r for r in rdatas])


_TYPE_CLASS_TTL = struct.Struct("!HHI")
_LENGTH = struct.Struct("!H")
_FIXED = frozenset((RType.A, RType.AAAA))  # types whose RDATA all have one length


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


def signing_engine() -> str:
    """What makes the signatures: "libcrypto" (the C extension's batches) or "cryptography" (without it)."""
    return "cryptography" if _sign is None else "libcrypto"


def signing_threads() -> int:
    """Threads that sign a build's RRsets: one per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


BATCH = 2048  # RRsets per batch: libcrypto signs one in about 40 ms without the GIL, and a thread takes it whole


# what a signature is kept by: (owner, type, TTL, sorted RDATA), and the key's DNSKEY when not the signing key's
Cached = tuple[Any, ...]

Signs = Any  # what signs a batch: a `_sign.Key` (libcrypto, the GIL released) or the `cryptography` private key


@dataclass
class Batch:
    """RRsets of one key to sign: what each is kept by, and its signing input (the RRSIG RDATA less its
    signature, `head` octets, then the RRset in canonical form)."""

    signs: Signs
    head: int
    contents: list[Cached] = field(default_factory=list)
    inputs: list[bytes] = field(default_factory=list)

    def sign(self) -> tuple[list[tuple[Cached, bytes]], float]:
        """Each RRset's RRSIG RDATA, and the time they took."""
        started = time.perf_counter()
        if _sign is not None and isinstance(self.signs, _sign.Key):
            rdatas = self.signs.sign_many(self.inputs, self.head)
        else:
            rdatas = [data[: self.head] + signature_of(self.signs, data) for data in self.inputs]
        return list(zip(self.contents, rdatas)), time.perf_counter() - started


def batch_signer(private: PrivateKey) -> Signs:
    """libcrypto's copy of the key when the C extension is built, else the key itself."""
    if _sign is None:
        return private
    return _sign.Key(private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


Done = tuple[list[tuple[Cached, bytes]], float] | BaseException


@dataclass
class Signer:
    """One generation's signing: the key, the window, and the signatures by RRset content (made here or
    carried over from the generation before when the content and window are the same). `others`: the keys
    published besides the signing one around a rollover (keys.KeySet.others), which sign only the RRsets
    that introduce keys (request_by_all).

    A build asks for signatures with request(), then finish() waits until all are made, and signature() reads
    one. With the C extension and more than one core, batches are signed by `threads` signing threads while
    the build goes on walking the table (libcrypto signs a whole batch without the GIL); else finish() signs
    them in the build's thread. No thread outlives finish(): the supervisor forks answerers after the build."""

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
    _batches: dict[bytes, Batch] = field(default_factory=dict, repr=False)  # the batch being filled, per key
    _signs: dict[bytes, Signs] = field(default_factory=dict, repr=False)
    _waiting: queue.SimpleQueue[Batch | None] = field(default_factory=queue.SimpleQueue, repr=False)
    _done: list[Done] = field(default_factory=list, repr=False)
    _workers: list[threading.Thread] = field(default_factory=list, repr=False)

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
        head, data = signing_input(key, self.zone, owner, rtype, ttl, rdatas, self.window)
        batch = self._batches.get(key.dnskey)
        if batch is None:
            signs = self._signs.get(key.dnskey)
            if signs is None:
                signs = self._signs[key.dnskey] = batch_signer(key.private)
            batch = self._batches[key.dnskey] = Batch(signs, len(head))
        batch.contents.append(cached)
        batch.inputs.append(data)
        if len(batch.inputs) >= BATCH and self.threads > 1 and _sign is not None:
            del self._batches[key.dnskey]
            self._hand_over(batch)
        return cached

    def _hand_over(self, batch: Batch) -> None:
        """A full batch to the signing threads, started at the first."""
        if not self._workers:
            self._workers = [threading.Thread(target=self._work, name="dnssec-sign", daemon=True)
                             for _ in range(self.threads)]
            for worker in self._workers:
                worker.start()
        self._waiting.put(batch)

    def _work(self) -> None:
        """A signing thread: batches until told to stop (None)."""
        while (batch := self._waiting.get()) is not None:
            self._done.append(_signed(batch))

    def finish(self) -> None:
        """Every requested signature made: the batches not yet signed are signed here, beside the signing
        threads, which are then stopped and joined."""
        for batch in self._batches.values():
            self._waiting.put(batch)
        self._batches.clear()
        while True:
            try:
                waiting = self._waiting.get_nowait()
            except queue.Empty:
                break
            assert waiting is not None
            self._done.append(_signed(waiting))
        for _ in self._workers:
            self._waiting.put(None)
        for worker in self._workers:
            worker.join()
        self._workers = []
        done, self._done = self._done, []
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        for made, seconds in done:  # type: ignore[misc]  # (no exception left)
            self.cache.update(made)
            self.made += len(made)
            self.seconds += seconds

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


def _signed(batch: Batch) -> Done:
    try:
        return batch.sign()
    except BaseException as exc:  # noqa: BLE001 - handed to the build's thread, which raises it
        return exc
