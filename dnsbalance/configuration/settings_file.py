"""Read `dnsbalance.yaml`: the zone, its SOA and name servers, and the server's settings.

A key the file leaves out takes the default declared in model.py; a key with a wrong value is reported and takes
that default too, so the rest of the folder is still checked.
"""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dnsbalance.configuration.checker import Checker, brief, url_ok
from dnsbalance.configuration.cluster_settings import read_cluster
from dnsbalance.configuration.model import (
    Algorithm,
    Archive,
    DNSSECSettings,
    GeoIPSettings,
    HealthSettings,
    NameServer,
    ReloadSettings,
    RRLSettings,
    Settings,
    SOASettings,
    TCPSettings,
    field_defaults,
)
from dnsbalance.configuration.locations import default_state_dir
from dnsbalance.configuration.names import is_dns_name, normalise_name, parse_hostport
from dnsbalance.configuration.yamlpos import PosDict, PosList

FILE = "dnsbalance.yaml"
KEYS = ("zone", "ttl", "answers", "min_answers", "listen", "nameservers", "soa", "geoip", "health", "state_dir",
        "nsid", "cookies", "cookie_secret", "rrl", "tcp", "status", "archives", "reload",
        "cluster", "dnssec")
DEFAULTS = field_defaults(Settings)  # Settings needs a zone, so its defaults are read off its fields
SOA_MAX = 86400 * 7 * 52  # the longest SOA refresh, retry and expire accepted: 52 weeks
NO_ZONE = "invalid.invalid"  # stands in for a missing zone so the names built on it can still be checked


def read_settings(check: Checker, directory: Path, paths_from: Path | None = None) -> Settings | None:
    """The folder's Settings, or None when dnsbalance.yaml is missing, unparsable or not a mapping.
    `paths_from`: the folder the file's relative paths (GeoIP databases, state_dir) are relative to, when the
    file was copied away from it (the state folder's copy of the configuration in service); else `directory`."""
    path = directory / FILE
    base = paths_from or directory
    raw = check.read(path, required=True)
    if raw is None:
        return None
    top = check.mapping(raw, path, 1, FILE)
    if top is None:
        return None
    check.known_keys(top, KEYS, path, FILE)
    zone = check.string(top, "zone", path, FILE, None, is_dns_name, "a DNS name")
    if "zone" not in top:
        check.error(path, top.line, f"{FILE}: zone is required")
    zone = normalise_name(zone) if zone else NO_ZONE

    listen = _listen(check, top, path)
    nameservers = _nameservers(check, top, path, zone)
    soa = _soa(check, top, path, zone)
    geoip = _geoip(check, top, path, base)
    health = _health(check, top, path)
    archives = _archives(check, top, path, health)
    rrl = _rrl(check, top, path)
    tcp = _tcp(check, top, path)
    status_listen = _status(check, top, path)
    nsid = _hex_or_text(check, top, "nsid", path, 1, 128)
    cookie_secret = _hex_or_text(check, top, "cookie_secret", path, 16, 64)
    state_dir = check.string(top, "state_dir", path, FILE, None)
    answers = check.integer(top, "answers", path, FILE, 1, 32, DEFAULTS["answers"])
    return Settings(
        zone=zone,
        nameservers=nameservers,
        soa=soa,
        ttl=check.integer(top, "ttl", path, FILE, 0, 604800, DEFAULTS["ttl"]),
        answers=answers,
        min_answers=check.integer(top, "min_answers", path, FILE, 1, answers, DEFAULTS["min_answers"]),
        listen=listen or DEFAULTS["listen"],
        geoip=geoip,
        health=health,
        state_dir=base / state_dir if state_dir else default_state_dir(base),
        nsid=nsid,
        cookies=check.boolean(top, "cookies", path, FILE, DEFAULTS["cookies"]),
        cookie_secret=cookie_secret,
        rrl=rrl,
        tcp=tcp,
        archives=archives,
        status_listen=status_listen,
        reload=_reload(check, top, path),
        **_require(check, check.section(top, "health", path) if isinstance(top.get("health"), PosDict) else None,
                   path),
        cluster=read_cluster(check, top, path, zone, base),
        dnssec=_dnssec(check, top, path, base),
    )


def _listen(check: Checker, top: PosDict, path: Path) -> tuple[str, ...]:
    """The HOST:PORT items that parse; empty when the key is absent (the caller then takes the default)."""
    listen: list[str] = []
    if "listen" in top:
        items = top["listen"]
        if not isinstance(items, PosList) or not items:
            check.error(path, top.line_of("listen"), "listen must be a non-empty list of HOST:PORT")
        else:
            for index, item in enumerate(items):
                try:
                    parse_hostport(str(item))
                    listen.append(str(item))
                except ValueError as exc:
                    check.error(path, items.line_of(index), f"listen: {exc}")
    return tuple(listen)


def _nameservers(check: Checker, top: PosDict, path: Path, zone: str) -> tuple[NameServer, ...]:
    nameservers: list[NameServer] = []
    ns_map = check.mapping(top.get("nameservers"), path, top.line_of("nameservers"), "nameservers")
    if ns_map is None:
        return ()
    for name, addrs in ns_map.items():
        line = ns_map.line_of(name)
        if not isinstance(name, str) or not is_dns_name(name):
            check.error(path, line, f"nameservers: {brief(name)} is not a valid DNS name")
            continue
        addresses = check.addresses(addrs if addrs is not None else PosList(), path, line, f"nameserver '{name}'")
        fqdn = normalise_name(name)
        inside = fqdn == zone or fqdn.endswith("." + zone)
        if inside and not addresses.all():  # resolvers cannot reach a name server inside the zone without glue
            check.error(path, line, f"nameserver '{name}' is inside the zone and needs glue addresses")
        nameservers.append(NameServer(fqdn, addresses.all()))
    if not ns_map:
        check.error(path, ns_map.line, "nameservers: at least one name server is required")
    return tuple(nameservers)


def _soa(check: Checker, top: PosDict, path: Path, zone: str) -> SOASettings:
    soa = SOASettings(rname="hostmaster." + zone)  # rname has no fixed default: it follows the zone
    soa_map = check.section(top, "soa", path)
    if soa_map is None:
        return soa
    check.known_keys(soa_map, ("rname", "refresh", "retry", "expire", "minimum", "ttl"), path, "soa")
    return SOASettings(
        rname=normalise_name(check.string(soa_map, "rname", path, "soa", soa.rname, is_dns_name, "a DNS name")
                             or soa.rname),
        refresh=check.integer(soa_map, "refresh", path, "soa", 1, SOA_MAX, soa.refresh),
        retry=check.integer(soa_map, "retry", path, "soa", 1, SOA_MAX, soa.retry),
        expire=check.integer(soa_map, "expire", path, "soa", 1, SOA_MAX, soa.expire),
        minimum=check.integer(soa_map, "minimum", path, "soa", 0, 86400, soa.minimum),
        ttl=check.integer(soa_map, "ttl", path, "soa", 0, 604800, soa.ttl),
    )


def missing_database(key: str, setting: str, directory: Path) -> str:
    """A GeoIP file not found, named in full: relative paths are read from the configuration folder, not from
    where the command runs, which is the usual surprise (a file next to the operator's shell is not found)."""
    looked = Path(os.path.abspath(directory / setting))  # '..' folded; symbolic links left as written
    text = f"geoip: {key} {brief(setting)} does not exist: no file {looked}"
    if not Path(setting).is_absolute():
        text += f" (a relative path is read from the configuration folder, {os.path.abspath(directory)})"
        here = Path(os.path.abspath(setting))
        if here != looked and here.is_file():
            text += f"; there is one at {here}: write that full path, or move the file into the folder"
    return text


def _geoip(check: Checker, top: PosDict, path: Path, directory: Path) -> GeoIPSettings:
    geoip = GeoIPSettings()
    geo_map = check.section(top, "geoip", path)
    if geo_map is None:
        return geoip
    check.known_keys(geo_map, ("database", "ecs", "asn_database"), path, "geoip")
    database = check.string(geo_map, "database", path, "geoip", geoip.database)
    if database != "builtin" and not (directory / database).is_file():
        check.error(path, geo_map.line_of("database"), missing_database("database", database, directory))
    asn_database = check.string(geo_map, "asn_database", path, "geoip", geoip.asn_database)
    if asn_database is not None and not (directory / asn_database).is_file():
        check.error(path, geo_map.line_of("asn_database"), missing_database("asn_database", asn_database, directory))
    return GeoIPSettings(database=database, ecs=check.boolean(geo_map, "ecs", path, "geoip", geoip.ecs),
                         asn_database=asn_database)


def _health(check: Checker, top: PosDict, path: Path) -> HealthSettings:
    health = HealthSettings()
    h_map = check.section(top, "health", path)
    if h_map is None:
        return health
    check.known_keys(h_map, ("enabled", "interval", "timeout", "master", "stamp", "max_lag", "quorum", "grace",
                             "fall", "rise", "concurrency", "addresses", "vhost", "ca", "certificate_days", "traces", "require",
                             "source"),
                     path, "health")
    return HealthSettings(
        enabled=check.boolean(h_map, "enabled", path, "health", health.enabled),
        interval=check.number(h_map, "interval", path, "health", 1, 86400, health.interval),
        timeout=check.number(h_map, "timeout", path, "health", 0.05, 60, health.timeout),
        master=check.string(h_map, "master", path, "health", health.master, url_ok, "an http(s):// or rsync:// URL"),
        stamp=check.string(h_map, "stamp", path, "health", health.stamp),
        max_lag=check.number(h_map, "max_lag", path, "health", 0, 86400 * 365, health.max_lag),
        quorum=_quorum(check, h_map, path, "health", health.quorum),
        grace=check.number(h_map, "grace", path, "health", 0, 86400 * 7, health.grace),
        fall=check.integer(h_map, "fall", path, "health", 1, 100, health.fall),
        rise=check.integer(h_map, "rise", path, "health", 1, 100, health.rise),
        concurrency=check.integer(h_map, "concurrency", path, "health", 1, 10000, health.concurrency),
        addresses=check.boolean(h_map, "addresses", path, "health", health.addresses),
        vhost=check.boolean(h_map, "vhost", path, "health", health.vhost),
        ca=check.string(h_map, "ca", path, "health", health.ca),
        certificate_days=check.number(h_map, "certificate_days", path, "health", 0, 3650, health.certificate_days),
        traces=check.boolean(h_map, "traces", path, "health", health.traces),
        source=check.string(h_map, "source", path, "health", health.source, _address_ok, "an IP address"),
    )


def _address_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _require(check: Checker, health: PosDict | None, path: Path) -> dict[str, Any]:
    """`health: {require: {deb: {architectures: [amd64, arm64]}}}`: what a mirror must carry (its ftpsync trace
    says) to serve a table name."""
    section = check.section(health, "require", path) if health is not None else None
    if section is None:
        return {}
    found: dict[str, tuple[str, ...]] = {}
    lines: dict[str, int] = {}
    for name, node in section.items():
        line = section.line_of(name)
        what = f"health: require {brief(name)}"
        node = check.mapping(node, path, line, what)
        if node is None or not isinstance(name, str):
            continue
        check.known_keys(node, ("architectures",), path, what)
        items = node.get("architectures")
        if not isinstance(items, PosList) or not items or \
                not all(isinstance(a, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", a) for a in items):
            check.error(path, node.line_of("architectures") if "architectures" in node else line,
                        f"{what}: architectures must be a non-empty list of Debian architecture names "
                        f"(amd64, arm64, source ...), got {brief(items)}")
            continue
        found[name.lower()] = tuple(sorted(set(items)))
        lines[name.lower()] = line
    return {"require": MappingProxyType(found), "require_lines": MappingProxyType(lines)}


def _quorum(check: Checker, node: PosDict, path: Path, what: str, default: float) -> float:
    value = check.number(node, "quorum", path, what, 0, 1, default)
    if value == 0:  # a serial no mirror carries would be the reference: every mirror stale at each push
        check.error(path, node.line_of("quorum"), f"{what}: quorum must be above 0 (a share of the mirrors, 0..1)")
        return default
    return value


ARCHIVE_KEYS = ("master", "stamp", "max_lag", "quorum", "grace", "names")


def _archives(check: Checker, top: PosDict, path: Path, health: HealthSettings) -> tuple[Archive, ...]:
    """`archives:` name -> {master, stamp, names, ...}; the single-archive health keys are then only defaults."""
    a_map = check.section(top, "archives", path)
    if a_map is None:
        return ()
    if not a_map:
        check.error(path, top.line_of("archives"), "archives: name at least one archive (or leave the key out)")
        return ()
    h_map = top.get("health")
    for key in ("master", "stamp"):
        if isinstance(h_map, PosDict) and key in h_map:
            check.error(path, h_map.line_of(key), f"health: {key} is the single-archive form; with archives: "
                                                  f"each archive names its own {key}")
    archives: list[Archive] = []
    claimed: dict[str, str] = {}  # table name -> the archive that lists it
    for name, node in a_map.items():
        line = a_map.line_of(name)
        what = f"archive '{name}'"
        if not isinstance(name, str) or not name or "/" in name:
            check.error(path, line, f"archive name '{name}' must be a non-empty string without '/'")
            continue
        node = check.mapping(node if node is not None else PosDict(), path, line, what)
        if node is None:
            continue
        check.known_keys(node, ARCHIVE_KEYS, path, what)
        names: list[str] = []
        if "names" in node:
            listed = node["names"]
            if not isinstance(listed, PosList) or not listed:
                check.error(path, node.line_of("names"), f"{what}: names must be a non-empty list of table names")
            else:
                for index, item in enumerate(listed):
                    key = normalise_name(str(item)) if item != "@" else "@"
                    if key in claimed:
                        check.error(path, listed.line_of(index), f"{what}: '{item}' is already served from "
                                                                 f"archive '{claimed[key]}'")
                        continue
                    claimed[key] = name
                    names.append(key)
        archives.append(Archive(
            name=name,
            master=check.string(node, "master", path, what, None, url_ok, "an http(s):// or rsync:// URL"),
            stamp=check.string(node, "stamp", path, what, health.stamp),
            max_lag=check.number(node, "max_lag", path, what, 0, 86400 * 365, health.max_lag),
            quorum=_quorum(check, node, path, what, health.quorum),
            grace=check.number(node, "grace", path, what, 0, 86400 * 7, health.grace),
            names=tuple(names),
            line=line,
        ))
    unlisted = [a.name for a in archives if not a.names]
    if len(unlisted) > 1:
        check.error(path, top.line_of("archives"), f"archives: only one archive may leave out names (it serves "
                                                   f"every unlisted name); {', '.join(unlisted)} do")
    return tuple(archives)


def _rrl(check: Checker, top: PosDict, path: Path) -> RRLSettings:
    rrl = RRLSettings()
    r_map = check.section(top, "rrl", path)
    if r_map is None:
        return rrl
    check.known_keys(r_map, ("enabled", "responses_per_second", "slip", "ipv4_prefix", "ipv6_prefix"), path, "rrl")
    return RRLSettings(
        enabled=check.boolean(r_map, "enabled", path, "rrl", rrl.enabled),
        responses_per_second=check.integer(r_map, "responses_per_second", path, "rrl", 1, 1000000,
                                           rrl.responses_per_second),
        slip=check.integer(r_map, "slip", path, "rrl", 0, 10, rrl.slip),
        ipv4_prefix=check.integer(r_map, "ipv4_prefix", path, "rrl", 8, 32, rrl.ipv4_prefix),
        ipv6_prefix=check.integer(r_map, "ipv6_prefix", path, "rrl", 16, 128, rrl.ipv6_prefix),
    )


def _tcp(check: Checker, top: PosDict, path: Path) -> TCPSettings:
    tcp = TCPSettings()
    t_map = check.section(top, "tcp", path)
    if t_map is None:
        return tcp
    check.known_keys(t_map, ("max_connections", "idle_timeout"), path, "tcp")
    return TCPSettings(
        max_connections=check.integer(t_map, "max_connections", path, "tcp", 1, 100000, tcp.max_connections),
        idle_timeout=check.number(t_map, "idle_timeout", path, "tcp", 0.1, 3600, tcp.idle_timeout),
    )


def _reload(check: Checker, top: PosDict, path: Path) -> ReloadSettings:
    reload = ReloadSettings()
    r_map = check.section(top, "reload", path)
    if r_map is None:
        return reload
    check.known_keys(r_map, ("auto_apply",), path, "reload")
    return ReloadSettings(auto_apply=check.boolean(r_map, "auto_apply", path, "reload", reload.auto_apply))


def _dnssec(check: Checker, top: PosDict, path: Path, base: Path) -> DNSSECSettings:
    dnssec = DNSSECSettings()
    d_map = check.section(top, "dnssec", path)
    if d_map is None:
        return dnssec
    check.known_keys(d_map, ("sign", "algorithm", "validity", "refresh", "keys"), path, "dnssec")
    algorithm = check.integer(d_map, "algorithm", path, "dnssec", 0, 255, int(dnssec.algorithm))
    if algorithm not in tuple(Algorithm):
        check.error(path, d_map.line_of("algorithm"), f"dnssec: algorithm must be one of "
                                                      f"{', '.join(f'{a.value} ({a.name})' for a in Algorithm)}")
        algorithm = dnssec.algorithm
    validity = check.integer(d_map, "validity", path, "dnssec", 3600, 86400 * 366, dnssec.validity)
    refresh = check.integer(d_map, "refresh", path, "dnssec", 600, 86400 * 366, dnssec.refresh)
    if refresh >= validity:  # a signature would be refreshed before it was made
        check.error(path, d_map.line_of("refresh"), f"dnssec: refresh ({refresh}) must be less than validity "
                                                    f"({validity})")
        refresh = validity // 2
    keys = check.string(d_map, "keys", path, "dnssec", None)
    return DNSSECSettings(sign=check.boolean(d_map, "sign", path, "dnssec", dnssec.sign),
                          algorithm=Algorithm(algorithm), validity=validity, refresh=refresh,
                          keys=base / keys if keys else None)


def _status(check: Checker, top: PosDict, path: Path) -> str | None:
    """The status page's HOST:PORT; None when the file turns it off."""
    default: str | None = DEFAULTS["status_listen"]
    if "status" not in top:
        return default
    if top["status"] in (None, False, "off"):
        return None
    try:
        parse_hostport(str(top["status"]))
        return str(top["status"])
    except ValueError as exc:
        check.error(path, top.line_of("status"), f"status: {exc} (or off)")
        return default


def _hex_or_text(check: Checker, top: PosDict, key: str, path: Path, low: int, high: int) -> bytes | None:
    """`text` as UTF-8, or `hex:0a1b...` as raw bytes; `low`..`high` octets."""
    text = check.string(top, key, path, FILE, None)
    if text is None:
        return None
    try:
        value = bytes.fromhex(text[4:]) if text.startswith("hex:") else text.encode()
    except ValueError:
        value = b""
    if not low <= len(value) <= high:
        check.error(path, top.line_of(key), f"{FILE}: {key} must be {low}..{high} octets (text, or hex:0a1b...)")
        return None
    return value
