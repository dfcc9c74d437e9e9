"""UDP datagrams in and out, several per system call under load, each reply from the address its query
was sent to.

Two problems of a plain recvfrom/sendto loop, both solved here and nowhere else:

- A socket bound to 0.0.0.0 or [::] sends from the address the routing table picks, not the one the client
  asked; the client drops the reply. With IP_PKTINFO / IPV6_RECVPKTINFO the kernel tells each datagram's
  destination, and the reply carries it back as its source (ancillary data, as gdnsd, Knot and NSD do).
  Sockets bound to one address need none of it and skip it.
- Two system calls per query dominate a busy UDP thread. When datagrams queue up, recvmmsg(MSG_WAITFORONE)
  takes every waiting one (up to WIDTH) in one call and the replies leave in one sendmmsg.

The standard library has neither recvmmsg nor sendmmsg, and the one PyPI package wrapping them (pysockmmsg
0.0.2, 2021) is unmaintained, so they are called through ctypes on the C library (Linux). ctypes releases the
GIL for the call, so other threads run while the receive blocks. A ctypes call and the decoding of its
buffers cost more than the socket module's recvfrom/sendto (about 1.5 us each way for a lone datagram), so
the batch calls only pay when several datagrams wait: Datagrams uses recvfrom/sendto (recvmsg/sendmsg on a
wildcard socket) until QUEUED receives in a row return without having had to wait, then batches until a batch
is one datagram. Where recvmmsg is missing (not Linux) it stays on the plain calls.

Even batched, a thread that wakes for every datagram pays a wake-up and two system calls per query, which
at tens of thousands of queries a second cost more CPU than answering them. Past PACE_RATE datagrams a
second, the thread pauses briefly after each batch that was not full (at most PACE_MAX, aiming at
PACE_BATCH datagrams a batch), as a network card's interrupt coalescing does: a query waits at most that
much longer, and the CPU per query at 40,000 q/s falls by about a sixth (bench/cpu_per_query.py). Below
that rate nothing waits.

The batch buffers are laid out once per socket; a batch only writes lengths and one or two pointers per
reply. Kernel structures on LP64 Linux: iovec 16 bytes, msghdr 56, mmsghdr 64 (laid out by ctypes).
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
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LINUX = sys.platform.startswith("linux")
# Linux values; the socket module lacks some of them (IP_PKTINFO on 3.11, MSG_WAITFORONE).
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
MSG_WAITFORONE = 0x10000

WIDTH = 32  # datagrams per batch at most
SLOT = 1 << 16  # bytes per datagram buffer: any UDP payload fits. mmap'd, so only touched pages cost memory
HOSTS = 1 << 16  # client addresses whose text is kept (then forgotten all at once)
WAITED = 10e-6  # a receive that took longer than this slept for its datagram: nothing else was queued
QUEUED = 3  # receives in a row that found their datagram waiting before batching: a queue is building
PACE_RATE = 20_000  # datagrams a second on one socket past which its thread pauses between batches
PACE_MAX = 200e-6  # seconds of such a pause at most: a query waits no longer than that for its batch
PACE_BATCH = 8  # datagrams a paced batch aims at
PACE_WINDOW = 0.1  # seconds over which the rate is measured
PR_SET_TIMERSLACK = 29


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def want_destination(sock: socket.socket) -> bool:
    """Ask the kernel for each datagram's destination address (set before bind: no datagram without it).
    False where it is not known how (not Linux)."""
    if not LINUX:
        return False
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    return True


def reply_pktinfo(received: bytes, v6: bool) -> bytes:
    """The pktinfo a reply sends, from the one its query came with: the query's destination as the source.
    IPv4 in_pktinfo (ifindex, spec_dst, addr): the kernel's spec_dst is the query's destination, or for a
    broadcast the address to answer from; the interface is cleared so the routing table still picks the way
    out (as Knot does). IPv6 in6_pktinfo (addr, ifindex): the interface is kept only for a link-local address,
    whose scope needs it. MmsgBatch._sources applies the same rule in place."""
    if v6:
        link_local = received[0] == 0xFE and received[1] & 0xC0 == 0x80
        return received[:16] + (received[16:20] if link_local else b"\0\0\0\0")
    return b"\0\0\0\0" + received[4:12]


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
    if not LINUX:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        libc.recvmmsg.restype = libc.sendmmsg.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


LIBC = _libc()


def pause_for(rate: float) -> float:
    """Seconds to pause after a batch that was not full, at `rate` datagrams a second (see PACE_RATE)."""
    return min(PACE_MAX, PACE_BATCH / rate) if rate >= PACE_RATE else 0.0


def precise_sleeps() -> None:
    """In a UDP thread: its pauses (PACE_MAX) end within 10 us of their time, not the default 50 us late
    (the timer slack is per thread on Linux)."""
    if LIBC is not None:
        LIBC.prctl(PR_SET_TIMERSLACK, 10_000, 0, 0, 0)


def _address(buffer: bytearray | mmap.mmap) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


class _Vector:
    """`width` mmsghdr entries in a bytearray, with memoryviews for writing their fields by index."""

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


class MmsgBatch:
    """recvmmsg/sendmmsg through ctypes, the destination address kept per datagram on wildcard sockets.
    receive() blocks for one datagram and takes the others already waiting; send() answers that batch."""

    def __init__(self, sock: socket.socket, wildcard: bool, width: int = WIDTH) -> None:
        assert LIBC is not None
        self.sock = sock  # kept: the descriptor must outlive us
        self.fd = sock.fileno()
        self.width = width
        self.recvmmsg, self.sendmmsg = LIBC.recvmmsg, LIBC.sendmmsg
        self.family = sock.family
        self.v6 = v6 = sock.family == socket.AF_INET6
        # sockaddr_in (16 bytes, address at 4) or sockaddr_in6 (28 bytes, address at 8), 32 apart
        self.namesize, self.at, self.alen = (32, 8, 16) if v6 else (32, 4, 4)
        namelen = 28 if v6 else 16
        self.wildcard = wildcard
        # one IP_PKTINFO (in_pktinfo, 12 bytes) or IPV6_PKTINFO (in6_pktinfo, 20 bytes) message per datagram
        self.ctlspace = socket.CMSG_SPACE(20 if v6 else 12) if wildcard else 0
        self.data_at = socket.CMSG_LEN(0)
        level, kind = (socket.IPPROTO_IPV6, IPV6_PKTINFO) if v6 else (socket.IPPROTO_IP, IP_PKTINFO)
        self.cmsg_head = level.to_bytes(4, sys.byteorder) + kind.to_bytes(4, sys.byteorder)  # after cmsg_len

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
                if wildcard:
                    hdr.msg_control, hdr.msg_controllen = self.controls_at + i * self.ctlspace, self.ctlspace
        self.replied_control = [0] * width  # per datagram of the batch: control bytes its reply sends
        # per entry, the indexes a batch reads or writes: computed once, not per datagram
        self.rx_plan = [(i * SLOT, i * self.rx.ustride + self.rx.length, i * self.namesize + self.at,
                         i * self.namesize + self.at + self.alen, (i * self.namesize + self.at) // 4)
                        for i in range(width)]
        self.tx_plan = [(j * SLOT, 2 * j + 1, j * self.tx.stride) for j in range(width)]
        self.addresses = memoryview(self.names).cast("I")  # IPv4 addresses, as keys of `hosts`
        self.hosts: dict[int, str] = {}
        self.tx_at = [ctypes.c_void_p(self.tx.base + j * ctypes.sizeof(MMsgHdr)) for j in range(width)]

    def receive(self) -> list[tuple[bytes, str]]:
        while True:
            count = self.recvmmsg(self.fd, self.rx.base, self.width, MSG_WAITFORONE, None)
            if count >= 0:
                break
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))
        inbox, lengths, hosts = self.inbox, self.rx.uints, self.hosts
        got = []
        if self.v6:
            names, ntop = self.names, socket.inet_ntop
            for start, length, at, end, _ in self.rx_plan[:count]:
                got.append((inbox[start:start + lengths[length]], ntop(socket.AF_INET6, names[at:end])))
        else:  # an IPv4 address as an int is a cheap key to the text the answer code wants
            addresses = self.addresses
            for start, length, at, end, key in self.rx_plan[:count]:
                address = addresses[key]
                host = hosts.get(address)
                if host is None:
                    if len(hosts) >= HOSTS:
                        hosts.clear()
                    host = hosts[address] = socket.inet_ntop(socket.AF_INET, self.names[at:end])
                got.append((inbox[start:start + lengths[length]], host))
        if self.wildcard:
            self._sources(count)
        return got

    def _sources(self, count: int) -> None:
        """Turn each received pktinfo into the one its reply sends, in place (the rule of reply_pktinfo)."""
        words, stride, controllen, space = self.rx.words, self.rx.stride, self.rx.controllen, self.ctlspace
        controls, data, head, v6 = self.controls, self.data_at, self.cmsg_head, self.v6
        word = ctypes.sizeof(ctypes.c_size_t)
        for i in range(count):
            field = i * stride + controllen
            start = i * space
            if words[field] != space or controls[start + word:start + word + 8] != head:
                words[field] = space  # no destination came with it (queued before the option): kernel's choice
                self.replied_control[i] = 0
                continue
            info = start + data
            if v6:
                if not (controls[info] == 0xFE and controls[info + 1] & 0xC0 == 0x80):
                    controls[info + 16:info + 20] = b"\0\0\0\0"
            else:
                controls[info:info + 4] = b"\0\0\0\0"
            self.replied_control[i] = space

    def send(self, replies: list[bytes | None]) -> None:
        outbox, lengths, words, plan = self.outbox, self.tx_lengths, self.tx.words, self.tx_plan
        wildcard, replied = self.wildcard, self.replied_control
        name, control, controllen = self.tx.name, self.tx.control, self.tx.controllen
        count = 0
        moved = []  # entries pointed at another datagram's address than their own (a query went unanswered)
        for i, reply in enumerate(replies):
            if reply is None:
                continue
            start, length, entry = plan[count]
            outbox[start:start + len(reply)] = reply
            lengths[length] = len(reply)
            if i != count:
                words[entry + name] = self.names_at + i * self.namesize
                words[entry + control] = self.controls_at + i * self.ctlspace if wildcard else 0
                moved.append(count)
            if wildcard:
                words[entry + controllen] = replied[i]
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
        for j in moved:
            entry = plan[j][2]
            words[entry + name] = self.names_at + j * self.namesize
            words[entry + control] = self.controls_at + j * self.ctlspace if wildcard else 0


class Datagrams:
    """A socket's datagrams: receive() blocks for at least one (data, client address) and returns all it
    took; send() takes one reply or None per datagram of that batch, in the same order. One datagram per call
    with the socket module's calls until datagrams queue up, then MmsgBatch until they no longer do."""

    def __init__(self, sock: socket.socket, width: int = WIDTH, native: bool = False) -> None:
        """`native`: batches are received, answered and sent by the native extension (serve())."""
        self.sock = sock
        self.v6 = sock.family == socket.AF_INET6
        self.wildcard = is_wildcard(sock.getsockname()[0])
        if self.wildcard and not want_destination(sock):
            log.warning("UDP replies on %s leave from the kernel's choice of address (no IP_PKTINFO here)",
                        sock.getsockname()[0])
            self.wildcard = False
        self.ctlspace = socket.CMSG_SPACE(20 if self.v6 else 12)
        self.pktinfo = (socket.IPPROTO_IPV6, IPV6_PKTINFO) if self.v6 else (socket.IPPROTO_IP, IP_PKTINFO)
        self.batch = MmsgBatch(sock, self.wildcard, width) if LIBC is not None and width > 1 else None
        self.native: Any = None  # _native.Batch: its own buffers, recvmmsg and sendmmsg in C
        if native and self.batch is not None:
            from dnsbalance import _native  # the caller checked that it is built (answer/native.py)

            self.native = _native.Batch(sock.fileno(), self.v6, self.wildcard, width)
        self.width = width
        self.batching = False  # the next receive is a batch one
        self.queued = 0  # receives in a row that found their datagram waiting
        self.batched = False  # the last receive was
        self.peer: tuple = ()
        self.control: list[tuple[int, int, bytes]] = []
        self.pause = 0.0  # seconds to wait before the next receive (see PACE_RATE)
        self.last = 0  # datagrams the last receive took
        self.window_start = time.monotonic()
        self.window_count = 0

    def receive(self) -> list[tuple[bytes, str]]:
        if self.pause and self.last < self.width:  # a full batch last time: the queue is deep, no pause
            time.sleep(self.pause)
        got = self._receive()
        self.last = len(got)
        self.window_count += len(got)
        now = time.monotonic()
        if now - self.window_start >= PACE_WINDOW:
            self.pause = pause_for(self.window_count / (now - self.window_start)) if self.batch is not None else 0.0
            self.window_start, self.window_count = now, 0
        return got

    def serve(self, shapes: Any, random: Callable[[], float],
              fallback: Callable[[bytes, str, bool], bytes | None]) -> tuple[int, int, float] | None:
        """With the native extension: receive a batch, answer it (the shapes known to `shapes` in C, every
        other datagram in order by `fallback(data, host, repeated)`) and send the replies, in one call;
        (datagrams received, answered natively, seconds answering); a receive timeout returns (0, 0, 0.0).
        Every receive, a lone datagram too: in C, recvmmsg and sendmmsg cost no more than recvfrom and sendto
        (the plain calls are for the Python path, where ctypes and buffer decoding cost more). None: no native
        batch here, so receive() and send()."""
        if self.native is None:
            return None
        if self.pause and self.last < self.width:
            time.sleep(self.pause)
        self.batched = True
        got = self.native.serve(shapes, random, fallback)
        count = got[0]
        if count:
            self.batching = count > 1
            self.queued = 0
            self.last = count
            self.window_count += count
        now = time.monotonic()
        if now - self.window_start >= PACE_WINDOW:
            self.pause = pause_for(self.window_count / (now - self.window_start))
            self.window_start, self.window_count = now, 0
        return got

    def _receive(self) -> list[tuple[bytes, str]]:
        if self.batching:
            assert self.batch is not None
            self.batched = True
            got = self.batch.receive()
            self.batching = len(got) > 1
            self.queued = 0
            return got
        self.batched = False
        started = time.perf_counter()
        if self.wildcard:
            data, ancillary, _, self.peer = self.sock.recvmsg(SLOT, self.ctlspace)
            self.control = [(*self.pktinfo, reply_pktinfo(info, self.v6))
                            for level, kind, info in ancillary if (level, kind) == self.pktinfo]
        else:
            data, self.peer = self.sock.recvfrom(SLOT)
        if time.perf_counter() - started < WAITED:
            self.queued += 1  # it was already waiting
            self.batching = self.queued >= QUEUED and self.batch is not None
        else:
            self.queued = 0
        return [(data, self.peer[0])]

    def send(self, replies: list[bytes | None]) -> None:
        if self.batched:
            assert self.batch is not None
            self.batch.send(replies)
            return
        reply = replies[0]
        if reply is None:
            return
        try:
            if self.wildcard:
                self.sock.sendmsg([reply], self.control, 0, self.peer)
            else:
                self.sock.sendto(reply, self.peer)
        except OSError as exc:
            log.debug("UDP send to %s failed: %s", self.peer[0], exc)
