"""Read `mirrors.yaml`: every mirror and relay, defined once and used by name in the tables."""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple, TypeGuard

from dnsbalance.configuration.checker import Checker, brief, url_ok
from dnsbalance.configuration.model import AdminState, Mirror, Relay, field_defaults
from dnsbalance.configuration.names import is_dns_name
from dnsbalance.configuration.yamlpos import PosDict, PosList

FILE = "mirrors.yaml"
TURN_TRANSPORTS = ("udp", "tcp", "tls")
MIRROR_DEFAULTS = field_defaults(Mirror)
RELAY_DEFAULTS = field_defaults(Relay)


class Fleet(NamedTuple):
    """What mirrors.yaml defines, by name; the tables refer to these."""

    mirrors: dict[str, Mirror]
    relays: dict[str, Relay]


def read_fleet(check: Checker, directory: Path, archives: tuple[str, ...] | None = None) -> Fleet:
    """The mirrors and relays that are well enough defined to be named in a table. `archives`: the archive
    names dnsbalance.yaml defines, which a mirror's `archives:` may use (None: not known, not checked)."""
    path = directory / FILE
    fleet = Fleet({}, {})
    raw = check.read(path, required=True)
    if raw is None:
        return fleet
    top = check.mapping(raw, path, 1, FILE)
    if top is None:
        return fleet
    check.known_keys(top, ("mirrors", "relays"), path, FILE)
    section = check.section(top, "mirrors", path) or PosDict()
    for name, node in section.items():
        mirror = _mirror(check, path, name, node, section.line_of(name), archives)
        if mirror is not None:
            fleet.mirrors[name] = mirror
    section = check.section(top, "relays", path) or PosDict()
    for name, node in section.items():
        relay = _relay(check, path, name, node, section.line_of(name), fleet.mirrors)
        if relay is not None:
            fleet.relays[name] = relay
    return fleet


def _one_label(name: object) -> TypeGuard[str]:
    """Mirror and relay names become labels of SRV targets (<relay>.relay.<zone>), so one label only."""
    return isinstance(name, str) and is_dns_name(name) and "." not in name


def _mirror(check: Checker, path: Path, name: object, node: object, line: int,
            archives: tuple[str, ...] | None) -> Mirror | None:
    what = f"mirror {brief(name)}"
    if not _one_label(name):
        check.error(path, line, f"mirror name {brief(name)} must be one DNS label (letters, digits, - and _)")
        return None
    node = check.mapping(node, path, line, what)
    if node is None:
        return None
    check.known_keys(node, ("addresses", "url", "state", "archives", "lock", "host"), path, what)
    if not node.get("addresses"):
        check.error(path, line, f"{what} has no address")
    addresses = check.addresses(node.get("addresses", PosList()), path, node.line_of("addresses"), what)
    url = check.string(node, "url", path, what, MIRROR_DEFAULTS["url"], url_ok, "an http(s):// or rsync:// URL")
    if url and not url.endswith("/"):
        url += "/"  # the stamp path is joined under the URL
    state = _state(check, node, path, what, MIRROR_DEFAULTS["state"])
    urls = _archive_urls(check, node, path, what, archives)
    lock: str | None = MIRROR_DEFAULTS["lock"]
    if "lock" in node:
        value = node["lock"]
        if value in (False, None, "off"):
            lock = ""
        else:
            lock = check.string(node, "lock", path, what, MIRROR_DEFAULTS["lock"],
                                lambda s: bool(s) and not s.startswith("/") and ".." not in s.split("/"),
                                "a file name under the archive root (or off)")
    host = check.string(node, "host", path, what, MIRROR_DEFAULTS["host"], is_dns_name, "a host name")
    return Mirror(name, addresses.ipv4, addresses.ipv6, url, state, MappingProxyType(urls), lock, host)


def _archive_urls(check: Checker, node: PosDict, path: Path, what: str,
                  archives: tuple[str, ...] | None) -> dict[str, str]:
    """`archives: {debian: URL, debian-security: URL}`: the archives this mirror carries, at which base URL."""
    urls: dict[str, str] = {}
    a_map = check.section(node, "archives", path)
    if a_map is None:
        return urls
    for archive, value in a_map.items():
        aline = a_map.line_of(archive)
        if archives is not None and archive not in archives:
            known = ", ".join(archives) if archives else "none: dnsbalance.yaml has no archives:"
            check.error(path, aline, f"{what}: unknown archive '{archive}' (defined: {known})")
            continue
        if not isinstance(value, str) or not url_ok(value):
            check.error(path, aline, f"{what}: archive '{archive}' must be an http(s):// or rsync:// URL, "
                                     f"got {value!r}")
            continue
        urls[str(archive)] = value if value.endswith("/") else value + "/"
    return urls


def _relay(check: Checker, path: Path, name: object, node: object, line: int,
           mirrors: dict[str, Mirror]) -> Relay | None:
    what = f"relay {brief(name)}"
    if not _one_label(name):
        check.error(path, line, f"relay name {brief(name)} must be one DNS label (letters, digits, - and _)")
        return None
    if name in mirrors:  # tables name both kinds in one namespace
        check.error(path, line, f"'{name}' is both a mirror and a relay")
        return None
    node = check.mapping(node, path, line, what)
    if node is None:
        return None
    check.known_keys(node, ("addresses", "stun", "turn", "state"), path, what)
    if not node.get("addresses"):
        check.error(path, line, f"{what} has no address")
    addresses = check.addresses(node.get("addresses", PosList()), path, node.line_of("addresses"), what)
    stun = check.integer(node, "stun", path, what, 1, 65535, RELAY_DEFAULTS["stun"])
    turn: dict[str, int] = {}
    if "turn" in node:
        turn_map = check.mapping(node["turn"], path, node.line_of("turn"), f"{what} turn")
        if turn_map is not None:
            check.known_keys(turn_map, TURN_TRANSPORTS, path, f"{what} turn")
            for transport in TURN_TRANSPORTS:
                port = check.integer(turn_map, transport, path, f"{what} turn", 1, 65535, None)
                if port is not None:
                    turn[transport] = port
    state = _state(check, node, path, what, RELAY_DEFAULTS["state"])
    return Relay(name, addresses.ipv4, addresses.ipv6, stun, MappingProxyType(turn), state)


def _state(check: Checker, node: PosDict, path: Path, what: str, default: AdminState) -> AdminState:
    text = check.string(node, "state", path, what, default.value, lambda s: s in ("auto", "up", "down"),
                        "one of up, down, auto")
    return AdminState(text)
