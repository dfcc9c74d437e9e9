"""One server per state folder and per port, the pid file, and the outcome of a reload.

The running server holds an exclusive flock on `dnsbalance.lock` for its whole life: the kernel drops it
when the process dies, however it dies, so a lock that can be taken means no server is running, whatever
a leftover pid file says. `dnsbalance reload` uses that to refuse to signal a stale pid.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dnsbalance.configuration.names import parse_hostport
from dnsbalance.configuration.problems import Problem, Severity
from dnsbalance.statefiles import StateFolder, write_atomically

MDNS_PORT = 5353


class InstanceError(Exception):
    """Another server holds this state folder or port."""


@dataclass
class Instance:
    state: StateFolder
    lock: IO[str] | None

    def release(self) -> None:
        """Remove the pid file if it is still ours; the lock goes with the file descriptor."""
        try:
            if self.state.pid.read_text().strip() == str(os.getpid()):
                self.state.pid.unlink()
                self.state.instance.unlink(missing_ok=True)
        except OSError:
            pass
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def acquire(state: StateFolder) -> Instance:
    """Take the state folder for this process, or raise InstanceError naming the server that has it.
    A state folder that cannot be written is no reason not to answer: no lock, no pid file then (OSError
    is raised for the caller to log)."""
    state.root.mkdir(parents=True, exist_ok=True)
    handle = open(state.lock, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        holder = running_pid(state)
        raise InstanceError(f"another dnsbalance{f' (pid {holder})' if holder else ''} is running with the "
                            f"state folder {state.root}; stop it first, or give this one its own "
                            f"state_dir") from None
    write_atomically(state.pid, f"{os.getpid()}\n")
    return Instance(state, handle)


def running_pid(state: StateFolder) -> int | None:
    """The pid of the server that holds the state folder's lock now, else None (a leftover pid file from a
    server that died, or no server at all)."""
    try:
        with open(state.lock, encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # held: a server is running
            else:
                return None
        return int(state.pid.read_text().strip())
    except (OSError, ValueError):
        return None


def check_ports_free(listen: list[str]) -> None:
    """Every fixed port free for UDP and TCP, tried without SO_REUSEPORT: the workers of a supervisor bind
    with it, so the kernel would let a second instance share their port and take half the queries.

    The TCP probe sets SO_REUSEADDR (as the listeners do): Linux then refuses the bind only while a socket
    LISTENs on the port, not for the connections a previous server closed, whose side waits a minute in
    TIME_WAIT or FIN_WAIT2; without it a restart was refused for that minute."""
    for item in listen:
        host, port = parse_hostport(item)
        if port == 0:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for kind, name in ((socket.SOCK_DGRAM, "UDP"), (socket.SOCK_STREAM, "TCP")):
            with socket.socket(family, kind) as probe:
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if kind == socket.SOCK_STREAM:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    raise InstanceError(f"{item} ({name}) {why_not_bound(exc, host, port)}") from None


def bind_status(listen: str) -> socket.socket:
    """The status page's listening socket, bound before anything answers, or InstanceError: a status port in
    use stops the start as a DNS port does, since a server without its page (or an operator reading another
    instance's page at this address) is worse than a refusal. SO_REUSEADDR as asyncio sets it: a port left
    in TIME_WAIT by the previous server does not stop a restart, a socket listening there does."""
    host, port = parse_hostport(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = "is already in use: another dnsbalance's status page or another program listens there"
        else:
            why = why_not_bound(exc, host, port)
        raise InstanceError(f"status page {listen} {why}; give this server its own with --status HOST:PORT "
                            f"(or `status:` in dnsbalance.yaml), or none with --status off") from None
    return sock


def write_identity(state: StateFolder, identity: Mapping[str, object]) -> None:
    """The running server's identity file (StateFolder.instance); a read-only folder is no reason to stop."""
    try:
        write_atomically(state.instance, json.dumps(dict(identity), indent=1) + "\n")
    except OSError:
        pass


def read_identity(state: StateFolder) -> dict[str, object] | None:
    """The identity the server holding the state folder wrote: None when no server holds it, or the file is
    missing, unreadable or another process's (a leftover of a server that died)."""
    pid = running_pid(state)
    data = read_reload(state.instance)
    if pid is None or data is None or data.get("pid") != pid:
        return None
    return data


def why_not_bound(exc: OSError, host: str, port: int) -> str:
    """A bind error as an operator can act on it."""
    if exc.errno == errno.EADDRINUSE:
        who = ("mDNS (avahi-daemon) has port 5353 on most desktops" if port == MDNS_PORT
               else "another dnsbalance or DNS server is listening there")
        return f"is already in use: {who}; serve elsewhere with --listen HOST:PORT (or `listen:` in dnsbalance.yaml)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot be bound: no interface of this host has the address {host}"
    if exc.errno == errno.EACCES and port < 1024:
        return ("cannot be bound: permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE "
                "(deploy/dnsbalance.service grants it)")
    return f"cannot be bound: {exc.strerror or exc}"


def record_reload(state: StateFolder, problems: list[Problem], generation: int) -> None:
    """What `dnsbalance reload` waits for: applied, or refused with the errors."""
    errors = [str(p) for p in problems if p.severity is Severity.ERROR]
    outcome = {"pid": os.getpid(), "at": time.time(), "applied": not errors, "generation": generation,
               "errors": errors, "warnings": [str(p) for p in problems if p.severity is not Severity.ERROR]}
    try:
        write_atomically(state.reload_result, json.dumps(outcome) + "\n")
    except OSError:
        pass


REQUEST_FRESH = 60.0  # seconds a reload request names the reload that follows it


def request_reload(state: StateFolder, by: str) -> None:
    """Say who sends the SIGHUP that follows (for the operators' event log); best effort."""
    try:
        write_atomically(state.reload_request, json.dumps({"by": by, "pid": os.getpid(), "at": time.time()}) + "\n")
    except OSError:
        pass


def reload_requester(state: StateFolder) -> str:
    """Who asked for the reload now starting: the request `dnsbalance reload` left (taken, so that it names
    one reload only), else a bare SIGHUP's words."""
    found = read_reload(state.reload_request)
    try:
        state.reload_request.unlink()
    except OSError:
        pass
    try:
        if found is not None and time.time() - float(found["at"]) < REQUEST_FRESH:  # type: ignore[arg-type]
            return f"{found['by']} (dnsbalance reload, pid {found.get('pid')})"
    except (KeyError, TypeError, ValueError):
        pass
    return "SIGHUP (sender unknown)"


def read_reload(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_dnsbalance(pid: int) -> bool:
    """The process is a dnsbalance server (its command line says so), not whatever reused the pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"dnsbalance" in part for part in cmdline) and b"serve" in cmdline
