"""The zone's signing key: made by `dnsbalance dnssec keygen`, kept as a PKCS#8 PEM file of mode 0600 in the
key folder, read at start and reload. Only the public half (DNSKEY, its tag, the DS) is ever shown."""
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from dnsbalance.configuration.model import Algorithm
from dnsbalance.protocol.renderer import wire_name

KEY_FILE = "zone.key"  # the key that signs
NEXT_FILE = "next.key"  # a rollover's new key, published ahead of signing (`dnssec rollover start`)
RETIRING_FILE = "retiring.key"  # the key a rollover replaced, still published (`dnssec rollover switch`)
SEP_ZONE = 257  # DNSKEY flags: zone key + secure entry point, a combined signing key (RFC 4034 2.1.1)
PROTOCOL = 3
DIGEST_SHA256 = 2

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeyProblem(Exception):
    """A key file that is missing, unreadable or not a key this server can sign with (never shows the key)."""


@dataclass(frozen=True)
class SigningKey:
    algorithm: Algorithm
    private: PrivateKey
    dnskey: bytes  # the DNSKEY RDATA: flags, protocol, algorithm, public key
    tag: int

    def __repr__(self) -> str:  # a key never appears in a log
        return f"SigningKey(algorithm={self.algorithm.value}, tag={self.tag})"


def key_tag(dnskey: bytes) -> int:
    """RFC 4034 appendix B."""
    total = sum(b << 8 if i % 2 == 0 else b for i, b in enumerate(dnskey))
    return (total + (total >> 16)) & 0xFFFF


def _public(private: PrivateKey) -> bytes:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # RFC 6605: X and Y, 32 octets each (the uncompressed point without its 0x04 prefix)
    return private.public_key().public_bytes(serialization.Encoding.X962,
                                             serialization.PublicFormat.UncompressedPoint)[1:]


def signing_key(private: PrivateKey) -> SigningKey:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        algorithm = Algorithm.ED25519
    elif isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        algorithm = Algorithm.ECDSAP256SHA256
    else:
        raise KeyProblem("the key is neither ECDSA P-256 nor Ed25519")
    dnskey = struct.pack("!HBB", SEP_ZONE, PROTOCOL, algorithm) + _public(private)
    return SigningKey(algorithm, private, dnskey, key_tag(dnskey))


def generate(algorithm: Algorithm) -> PrivateKey:
    if algorithm is Algorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def pem_of(private: PrivateKey) -> bytes:
    """The key as its file holds it (PKCS#8 PEM): for the key folder and the cluster's copy in etcd, never a log."""
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def keygen(directory: Path, algorithm: Algorithm, name: str = KEY_FILE) -> SigningKey:
    """A new key written to directory/name (mode 0600 from its creation on); KeyProblem if one exists."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / name
    private = generate(algorithm)
    pem = pem_of(private)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyProblem(f"{path} already exists: keygen never overwrites a key (a rollover starts "
                         f"with a second key: dnsbalance dnssec rollover start)") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return signing_key(private)


def load(directory: Path, name: str = KEY_FILE) -> SigningKey:
    """The key in directory/zone.key; KeyProblem saying what is wrong (and what to run when there is none)."""
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyProblem(f"no DNSSEC key at {path}: run `dnsbalance dnssec keygen --config DIR`") from None
    except OSError as exc:
        raise KeyProblem(f"cannot read the DNSSEC key {path}: {exc.strerror}") from None
    return from_pem(data, str(path))


def from_pem(data: bytes, where: str) -> SigningKey:
    """The key a file (or the cluster's copy in etcd) holds; KeyProblem naming `where`, never the content."""
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyProblem(f"{where} is not a readable private key (damaged or encrypted)") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyProblem(f"{where}: the key is neither ECDSA P-256 nor Ed25519")
    try:
        return signing_key(private)
    except KeyProblem as exc:
        raise KeyProblem(f"{where}: {exc}") from None


@dataclass(frozen=True)
class KeySet:
    """The zone's keys: the one that signs, and around a rollover the next one (published before it signs) or
    the retiring one (published after it stopped signing), so that resolvers holding either DNSKEY validate."""

    signing: SigningKey
    next: SigningKey | None = None
    retiring: SigningKey | None = None

    @property
    def others(self) -> tuple[tuple[SigningKey, str], ...]:
        """The keys published besides the signing one, with their role."""
        return tuple((key, role) for key, role in ((self.next, "next"), (self.retiring, "retiring"))
                     if key is not None)

    @property
    def published(self) -> tuple[SigningKey, ...]:
        """Every DNSKEY of the zone, the signing key first."""
        return (self.signing, *(key for key, _ in self.others))

    @property
    def for_parent(self) -> tuple[SigningKey, ...]:
        """The keys the parent's DS set should point to (`ds`, CDS and CDNSKEY): the signing key, and the next
        one as soon as it is published, so the parent can add its DS before the switch; never the retiring."""
        return (self.signing, *((self.next,) if self.next is not None else ()))


def load_keys(directory: Path) -> KeySet:
    """The signing key and, during a rollover, the next or retiring one; KeyProblem for any that is damaged."""
    return KeySet(load(directory),
                  load(directory, NEXT_FILE) if (directory / NEXT_FILE).exists() else None,
                  load(directory, RETIRING_FILE) if (directory / RETIRING_FILE).exists() else None)


def ds_digest(zone: str, key: SigningKey) -> bytes:
    """SHA-256 over the owner and DNSKEY RDATA (RFC 4034 5.1.4, RFC 4509)."""
    return hashlib.sha256(wire_name(zone.lower()) + key.dnskey).digest()


def ds_rdata(zone: str, key: SigningKey) -> bytes:
    """DS (and CDS, RFC 7344) RDATA: key tag, algorithm, digest type, digest."""
    return struct.pack("!HBB", key.tag, key.algorithm, DIGEST_SHA256) + ds_digest(zone, key)


def ds_line(zone: str, key: SigningKey) -> str:
    """The DS record for the parent in zone-file syntax (SHA-256 digest, RFC 4509)."""
    digest = ds_digest(zone, key).hex().upper()
    return f"{zone}. IN DS {key.tag} {key.algorithm.value} {DIGEST_SHA256} {digest}"
