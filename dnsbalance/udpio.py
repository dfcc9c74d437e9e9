"""UDP datagrams in and out, several per system call, each reply from the address its query was sent to.

Two problems of a plain recvfrom/sendto loop, both solved here and nowhere else:

- A socket bound to 0.0.0.0 or [::] sends from the address the routing table picks, not the one the client
  asked; the client drops the reply. With IP_PKTINFO / IPV6_RECVPKTINFO the kernel tells each datagram's
  destination, and the reply carries it back as its source (ancillary data, as gdnsd, Knot and NSD do).
  Sockets bound to one address need none of it and skip it.
- Two system calls per query dominate a busy UDP thread. recvmmsg(MSG_WAITFORONE) blocks for the first
  datagram and takes every other one already waiting in the same call; the replies leave in one sendmmsg.
  At a light load a batch is one datagram: still two calls per query, no wait added.

The standard library has neither recvmmsg nor sendmmsg, and the one PyPI package wrapping them (pysockmmsg
0.0.2, 2021) is unmaintained, so they are called through ctypes on the C library (Linux). ctypes releases the
GIL for the call, so other threads run while the receive blocks. Where they are missing (not Linux),
PlainDatagrams does one datagram per call and wildcard sockets reply from the kernel's choice.

The buffers are laid out once per socket; a batch only writes lengths and, for wildcard sockets, one pointer
per reply. Kernel structures on LP64 Linux: iovec 16 bytes, msghdr 56, mmsghdr 64 (from ctypes, not assumed).
"""
from __future__ import annotations

import ctypes
import errno
import ipaddress
import logging
import mmap
import os
import socket
import sys
from typing import Protocol

log = logging.getLogger(__name__)

# Linux values; the socket module lacks some of them (IP_PKTINFO on 3.11, MSG_WAITFORONE).
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
MSG_WAITFORONE = 0x10000

WIDTH = 32  # datagrams per batch at most; gdnsd and Knot use 16 to 64
SLOT = 1 << 16  # bytes per datagram buffer: any UDP payload fits. mmap'd, so only touched pages cost memory


class Datagrams(Protocol):
    """A socket's datagrams: receive() blocks for at least one (data, client address) and returns them all;
    send() takes one reply or None per datagram of that batch, in the same order."""

    def receive(self) -> list[tuple[bytes, str]]: ...

    def send(self, replies: list[bytes | None]) -> None: ...


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def want_destination(sock: socket.socket) -> None:
    """Ask the kernel for each datagram's destination address (set before bind: no datagram without it)."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for name in ("recvmmsg", "sendmmsg"):
            call = getattr(libc, name)
            call.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p][
                : 5 if name == "recvmmsg" else 4]
            call.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


LIBC = _libc()


def _address(buffer: bytearray | mmap.mmap) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


class _Vector:
    """WIDTH mmsghdr entries in a bytearray, with memoryviews for writing their fields by index."""

    def __init__(self, width: int) -> None:
        self.memory = bytearray(ctypes.sizeof(MMsgHdr) * width)
        self.entries = (MMsgHdr * width).from_buffer(self.memory)
        self.base = ctypes.addressof(self.entries)
        self.words = memoryview(self.memory).cast("L")  # size_t (unsigned long on Linux) fields
        self.uints = memoryview(self.memory).cast("I")
        word, uint = ctypes.sizeof(ctypes.c_size_t), ctypes.sizeof(ctypes.c_uint)
        self.stride = ctypes.sizeof(MMsgHdr) // word
        self.name = MsgHdr.msg_name.offset // word
        self.control = MsgHdr.msg_control.offset // word
        self.controllen = MsgHdr.msg_controllen.offset // word
        self.ustride = ctypes.sizeof(MMsgHdr) // uint
        self.length = MMsgHdr.msg_len.offset // uint


class BatchDatagrams:
    """recvmmsg/sendmmsg through ctypes, with the destination address kept per datagram for wildcard sockets."""

    def __init__(self, sock: socket.socket, width: int = WIDTH) -> None:
        assert LIBC is not None
        self.sock = sock  # kept: the descriptor must outlive us
        self.fd = sock.fileno()
        self.width = width
        self.recvmmsg, self.sendmmsg = LIBC.recvmmsg, LIBC.sendmmsg
        self.family = sock.family
        v6 = sock.family == socket.AF_INET6
        # sockaddr_in (16 bytes, address at 4) or sockaddr_in6 (28 bytes, address at 8); 32 keeps alignment
        self.namesize, self.at, self.alen = (32, 8, 16) if v6 else (32, 4, 4)
        namelen = 28 if v6 else 16
        self.wildcard = is_wildcard(sock.getsockname()[0])
        # one IP_PKTINFO (in_pktinfo, 12 bytes) or IPV6_PKTINFO (in6_pktinfo, 20 bytes) message per datagram
        self.ctlspace = socket.CMSG_SPACE(20 if v6 else 12) if self.wildcard else 0
        self.data_at = socket.CMSG_LEN(0)
        level, kind = (socket.IPPROTO_IPV6, IPV6_PKTINFO) if v6 else (socket.IPPROTO_IP, IP_PKTINFO)
        self.cmsg_head = level.to_bytes(4, sys.byteorder) + kind.to_bytes(4, sys.byteorder)  # after cmsg_len
        self.v6 = v6
        if self.wildcard:
            want_destination(sock)

        self.inbox = mmap.mmap(-1, SLOT * width)
        self.outbox = mmap.mmap(-1, SLOT * width)
        self.names = bytearray(self.namesize * width)
        self.controls = bytearray(max(self.ctlspace, 1) * width)
        self.rx_iov = (IoVec * width)()
        self.tx_iov = (IoVec * width)()
        self.tx_lengths = memoryview(self.tx_iov).cast("B").cast("L")  # iov_len of entry j at 2j+1
        self.rx, self.tx = _Vector(width), _Vector(width)
        inbox, outbox = _address(self.inbox), _address(self.outbox)
        self.names_at, self.controls_at = _address(self.names), _address(self.controls)
        for i in range(width):
            self.rx_iov[i].iov_base, self.rx_iov[i].iov_len = inbox + i * SLOT, SLOT
            self.tx_iov[i].iov_base = outbox + i * SLOT
            for vector, iov in ((self.rx, self.rx_iov), (self.tx, self.tx_iov)):
                hdr = vector.entries[i].msg_hdr
                hdr.msg_name, hdr.msg_namelen = self.names_at + i * self.namesize, namelen
                hdr.msg_iov, hdr.msg_iovlen = ctypes.addressof(iov[i]), 1
                if self.wildcard:
                    hdr.msg_control, hdr.msg_controllen = self.controls_at + i * self.ctlspace, self.ctlspace
        self.namelen = namelen
        self.replied_control = [0] * width  # per datagram of the batch: control bytes to send back
        self.tx_at = [ctypes.c_void_p(self.tx.base + j * ctypes.sizeof(MMsgHdr)) for j in range(width)]

    def receive(self) -> list[tuple[bytes, str]]:
        while True:
            count = self.recvmmsg(self.fd, self.rx.base, self.width, MSG_WAITFORONE, None)
            if count >= 0:
                break
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))
        inbox, names, ntop, family = self.inbox, self.names, socket.inet_ntop, self.family
        lengths, ustride, length = self.rx.uints, self.rx.ustride, self.rx.length
        at, end, size = self.at, self.at + self.alen, self.namesize
        got = []
        for i in range(count):
            start = i * SLOT
            name = i * size
            got.append((inbox[start:start + lengths[i * ustride + length]], ntop(family, names[name + at:name + end])))
        if self.wildcard:
            self._sources(count)
        return got

    def _sources(self, count: int) -> None:
        """Turn each received pktinfo into the one its reply sends: source = the query's destination."""
        words, stride, controllen, space = self.rx.words, self.rx.stride, self.rx.controllen, self.ctlspace
        controls, data, head = self.controls, self.data_at, self.cmsg_head
        word = ctypes.sizeof(ctypes.c_size_t)
        for i in range(count):
            field = i * stride + controllen
            start = i * space
            if words[field] != space or controls[start + word:start + word + 8] != head:
                words[field] = space  # no destination came with it (queued before the option): kernel's choice
                self.replied_control[i] = 0
                continue
            info = start + data
            if self.v6:  # in6_pktinfo: addr[16], ifindex; keep the interface only where the scope needs it
                if not (controls[info] == 0xFE and controls[info + 1] & 0xC0 == 0x80):
                    controls[info + 16:info + 20] = b"\0\0\0\0"
            else:  # in_pktinfo: ifindex, spec_dst, addr. No interface: the routing table picks the way out
                controls[info:info + 4] = b"\0\0\0\0"
                controls[info + 4:info + 8] = controls[info + 8:info + 12]
            self.replied_control[i] = space

    def send(self, replies: list[bytes | None]) -> None:
        outbox, lengths = self.outbox, self.tx_lengths
        words, stride, name_field = self.tx.words, self.tx.stride, self.tx.name
        names_at, size = self.names_at, self.namesize
        wildcard = self.wildcard
        count = 0
        for i, reply in enumerate(replies):
            if reply is None:
                continue
            start = count * SLOT
            outbox[start:start + len(reply)] = reply
            lengths[2 * count + 1] = len(reply)
            entry = count * stride
            words[entry + name_field] = names_at + i * size
            if wildcard:
                words[entry + self.tx.control] = self.controls_at + i * self.ctlspace
                words[entry + self.tx.controllen] = self.replied_control[i]
            count += 1
        done = 0
        while done < count:
            sent = self.sendmmsg(self.fd, self.tx_at[done], count - done, 0)
            if sent < 0:
                code = ctypes.get_errno()
                if code == errno.EINTR:
                    continue
                log.debug("UDP send failed: %s", os.strerror(code))
                sent = 1  # that datagram is lost; the rest still go
            done += sent


class PlainDatagrams:
    """One datagram per recvfrom and sendto: where recvmmsg is missing."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peer: tuple = ()

    def receive(self) -> list[tuple[bytes, str]]:
        data, self.peer = self.sock.recvfrom(SLOT)
        return [(data, self.peer[0])]

    def send(self, replies: list[bytes | None]) -> None:
        for reply in replies:
            if reply is not None:
                try:
                    self.sock.sendto(reply, self.peer)
                except OSError as exc:
                    log.debug("UDP send to %s failed: %s", self.peer[0], exc)


def datagrams(sock: socket.socket) -> Datagrams:
    """The cheapest way this platform offers to move the socket's datagrams."""
    if LIBC is not None:
        return BatchDatagrams(sock)
    if is_wildcard(sock.getsockname()[0]):
        log.warning("no recvmmsg here: UDP replies on %s leave from the kernel's choice of address",
                    sock.getsockname()[0])
    return PlainDatagrams(sock)
