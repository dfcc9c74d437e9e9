"""Test mode: a process that may reach nothing but loopback. With `DNSBALANCE_LOOPBACK_ONLY=FILE` in its
environment (the test harness sets it), every connect, sendto, sendmsg and name lookup aimed outside
127.0.0.0/8 and ::1 is refused before it leaves (PermissionError, so a probe fails) and written to FILE, which the
harness reads after each test: a fixture that would probe a documentation address (192.0.2.x) fails its test.

A Python audit hook sees every socket call of the process, the prober's (httpx, STUN, TURN, the route check),
the relay probes' and anything else, so nothing is mocked and nothing can slip past a wrapper. An rsync client
started for an rsync:// URL is checked by its command line.

A process in another network namespace than the one `DNSBALANCE_LOOPBACK_NETNS` names (one a test built with
`unshare -n`, whose only way out is what the test set up) is let be."""
from __future__ import annotations

import ipaddress
import os
import re
import sys
from typing import Any

ENV = "DNSBALANCE_LOOPBACK_ONLY"  # the file refusals are appended to
NETNS_ENV = "DNSBALANCE_LOOPBACK_NETNS"  # the network namespace the rule holds in (readlink /proc/self/ns/net)
_RSYNC_HOST = re.compile(r"^rsync://(?:[^@/]*@)?(\[[^\]]*\]|[^:/]*)")
_installed = False


def loopback(host: object) -> bool:
    """An address (or name) whose traffic stays on this machine: 127.0.0.0/8, ::1, ::ffff:127.x, localhost.
    None (a passive lookup) and the empty host (INADDR_ANY as a destination is this host) count too."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return True  # not an internet address (AF_UNIX path, netlink pid)
    host = host.strip("[]").split("%", 1)[0]
    if host in ("", "localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: looking it up would ask a resolver out there
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def refused(event: str, args: tuple[Any, ...]) -> str | None:
    """What the event would reach outside loopback, or None."""
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and address and not loopback(address[0]):
            return f"{event} to {address[0]} port {address[1] if len(address) > 1 else '?'}"
    elif event == "socket.getaddrinfo":
        if args and not loopback(args[0]):
            return f"{event} of {args[0]!r}"
    elif event == "subprocess.Popen" and len(args) > 1 and isinstance(args[1], list | tuple):
        for word in args[1]:
            found = _RSYNC_HOST.match(word) if isinstance(word, str) else None
            if found and not loopback(found.group(1)):
                return f"rsync client to {found.group(1)}"
    return None


def install(record: str, netns: str | None = None) -> None:
    """Refuse and record (in the file `record`) whatever this process would send outside loopback; nothing
    when the process runs in another network namespace than `netns`. Once per process (a hook stays)."""
    global _installed
    if _installed or (netns and _netns() not in (None, netns)):
        return
    _installed = True

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not event.startswith(("socket.", "subprocess.")):
            return
        what = refused(event, args)
        if what is None:
            return
        line = f"pid {os.getpid()} {' '.join(sys.argv[:3])}: {what}\n"
        try:
            with open(record, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError:
            pass
        raise PermissionError(f"loopback-only test mode ({ENV}): refused {what}")

    sys.addaudithook(hook)


def install_from_environment() -> None:
    record = os.environ.get(ENV)
    if record:
        install(record, os.environ.get(NETNS_ENV))


def _netns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None
