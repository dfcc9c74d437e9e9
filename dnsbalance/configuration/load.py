"""Read a configuration folder into a Config, collecting every problem with its file and line.

    config/dnsbalance.yaml  config/mirrors.yaml  config/default.yaml
    config/continent/EU.yaml  config/country/JP.yaml (or JPN.yaml)
"""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

from dnsbalance.configuration.model import (
    APEX,
    DEFAULT_REGION,
    DRAINED,
    RELAY_LABEL,
    SRV_NAMES,
    SRV_SERVICES,
    AdminState,
    Config,
    Entry,
    GeoIPSettings,
    HealthSettings,
    Level,
    Mirror,
    NameServer,
    Region,
    Relay,
    RRLSettings,
    Settings,
    SOASettings,
    Table,
    TCPSettings,
)
from dnsbalance.configuration.names import (
    is_dns_name,
    normalise_name,
    parse_address,
    parse_hostport,
)
from dnsbalance.configuration.problems import ConfigError, Problem, Severity
from dnsbalance.configuration.yamlpos import (
    PosDict,
    PosList,
    YamlSyntaxError,
    load_yaml,
)
from dnsbalance.geo.countries import CONTINENTS, continent_of, country

TURN_TRANSPORTS = ("udp", "tcp", "tls")


class _Checker:
    """Collects problems; each check returns a usable value or None."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, path: Path, line: int, message: str) -> None:
        self.problems.append(Problem(path, line, message))

    def warning(self, path: Path, line: int, message: str) -> None:
        self.problems.append(Problem(path, line, message, Severity.WARNING))

    def read(self, path: Path, required: bool) -> Any:
        if not path.is_file():
            if required:
                self.error(path, 1, "file is missing")
            return None
        try:
            return load_yaml(path)
        except YamlSyntaxError as exc:
            self.error(path, exc.line, exc.detail)
            return None
        except OSError as exc:
            self.error(path, 1, f"cannot read: {exc.strerror}")
            return None

    def mapping(self, value: Any, path: Path, line: int, what: str) -> PosDict | None:
        if isinstance(value, PosDict):
            for key, dup_line in value.duplicates:
                self.error(path, dup_line, f"{what}: duplicate key '{key}'")
            return value
        self.error(path, line, f"{what} must be a mapping, got {_kind(value)}")
        return None

    def known_keys(self, mapping: PosDict, allowed: tuple[str, ...], path: Path, what: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.error(path, mapping.line_of(key),
                           f"{what}: unknown key '{key}' (expected one of: {', '.join(allowed)})")

    def integer(self, mapping: PosDict, key: str, path: Path, what: str, low: int, high: int,
                default: int) -> int:
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(path, mapping.line_of(key), f"{what}: {key} must be an integer {low}..{high}, got {value!r}")
            return default
        return value

    def number(self, mapping: PosDict, key: str, path: Path, what: str, low: float, high: float,
               default: float) -> float:
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            self.error(path, mapping.line_of(key), f"{what}: {key} must be a number {low:g}..{high:g}, got {value!r}")
            return default
        return float(value)

    def string(self, mapping: PosDict, key: str, path: Path, what: str, default: str | None,
               valid: Callable[[str], bool] = lambda s: bool(s), expect: str = "a non-empty string") -> str | None:
        if key not in mapping:
            return default
        value = mapping[key]
        if not isinstance(value, str) or not valid(value):
            self.error(path, mapping.line_of(key), f"{what}: {key} must be {expect}, got {value!r}")
            return default
        return value

    def boolean(self, mapping: PosDict, key: str, path: Path, what: str, default: bool) -> bool:
        if key not in mapping:
            return default
        value = mapping[key]
        if not isinstance(value, bool):
            self.error(path, mapping.line_of(key), f"{what}: {key} must be true or false, got {value!r}")
            return default
        return value

    def addresses(self, value: Any, path: Path, line: int, what: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if not isinstance(value, PosList):
            value = PosList([value]) if isinstance(value, str) else None
            if value is None:
                self.error(path, line, f"{what}: addresses must be a list of IP addresses")
                return (), ()
            value.line, value.item_lines = line, [line]
        ipv4: list[str] = []
        ipv6: list[str] = []
        for index, item in enumerate(value):
            address = parse_address(item) if isinstance(item, str) else None
            if address is None:
                self.error(path, value.line_of(index), f"{what}: '{item}' is not an IPv4 or IPv6 address")
            elif address.version == 4:
                ipv4.append(str(address))
            else:
                ipv6.append(str(address))
        return tuple(dict.fromkeys(ipv4)), tuple(dict.fromkeys(ipv6))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {PosDict: "a mapping", PosList: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _url_ok(text: str) -> bool:
    return text.startswith(("http://", "https://", "rsync://")) and len(text) > len("http://")


def _settings(check: _Checker, directory: Path) -> Settings | None:
    path = directory / "dnsbalance.yaml"
    raw = check.read(path, required=True)
    if raw is None:
        return None
    top = check.mapping(raw, path, 1, "dnsbalance.yaml")
    if top is None:
        return None
    check.known_keys(top, ("zone", "ttl", "answers", "min_answers", "listen", "nameservers", "soa", "geoip", "health",
                           "state_dir", "nsid", "cookies", "cookie_secret", "rrl", "tcp", "status"), path,
                     "dnsbalance.yaml")
    zone = check.string(top, "zone", path, "dnsbalance.yaml", None, is_dns_name, "a DNS name")
    if "zone" not in top:
        check.error(path, top.line, "dnsbalance.yaml: zone is required")
    zone = normalise_name(zone) if zone else "invalid.invalid"

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

    nameservers: list[NameServer] = []
    ns_map = check.mapping(top.get("nameservers"), path, top.line_of("nameservers"), "nameservers")
    if ns_map is not None:
        for name, addrs in ns_map.items():
            line = ns_map.line_of(name)
            if not isinstance(name, str) or not is_dns_name(name):
                check.error(path, line, f"nameservers: '{name}' is not a valid DNS name")
                continue
            ipv4, ipv6 = check.addresses(addrs if addrs is not None else PosList(), path, line,
                                         f"nameserver '{name}'")
            fqdn = normalise_name(name)
            inside = fqdn == zone or fqdn.endswith("." + zone)
            if inside and not ipv4 + ipv6:
                check.error(path, line, f"nameserver '{name}' is inside the zone and needs glue addresses")
            nameservers.append(NameServer(fqdn, ipv4 + ipv6))
        if not ns_map:
            check.error(path, ns_map.line, "nameservers: at least one name server is required")

    soa = SOASettings(rname="hostmaster." + zone)
    soa_map = check.mapping(top.get("soa"), path, top.line_of("soa"), "soa") if "soa" in top else None
    if soa_map is not None:
        check.known_keys(soa_map, ("rname", "refresh", "retry", "expire", "minimum", "ttl"), path, "soa")
        week = 86400 * 7 * 52
        soa = SOASettings(
            rname=normalise_name(check.string(soa_map, "rname", path, "soa", soa.rname, is_dns_name, "a DNS name")
                                 or soa.rname),
            refresh=check.integer(soa_map, "refresh", path, "soa", 1, week, soa.refresh),
            retry=check.integer(soa_map, "retry", path, "soa", 1, week, soa.retry),
            expire=check.integer(soa_map, "expire", path, "soa", 1, week, soa.expire),
            minimum=check.integer(soa_map, "minimum", path, "soa", 0, 86400, soa.minimum),
            ttl=check.integer(soa_map, "ttl", path, "soa", 0, 604800, soa.ttl),
        )

    geoip = GeoIPSettings()
    geo_map = check.mapping(top.get("geoip"), path, top.line_of("geoip"), "geoip") if "geoip" in top else None
    if geo_map is not None:
        check.known_keys(geo_map, ("database", "ecs"), path, "geoip")
        database = check.string(geo_map, "database", path, "geoip", "builtin")
        if database != "builtin" and not (directory / str(database)).is_file():
            check.error(path, geo_map.line_of("database"), f"geoip: database '{database}' does not exist")
        geoip = GeoIPSettings(database=str(database), ecs=check.boolean(geo_map, "ecs", path, "geoip", True))

    health = HealthSettings()
    h_map = check.mapping(top.get("health"), path, top.line_of("health"), "health") if "health" in top else None
    if h_map is not None:
        check.known_keys(h_map, ("enabled", "interval", "timeout", "master", "stamp", "max_lag", "fall", "rise",
                                 "concurrency"), path, "health")
        health = HealthSettings(
            enabled=check.boolean(h_map, "enabled", path, "health", True),
            interval=check.number(h_map, "interval", path, "health", 1, 86400, health.interval),
            timeout=check.number(h_map, "timeout", path, "health", 0.05, 60, health.timeout),
            master=check.string(h_map, "master", path, "health", None, _url_ok, "an http(s):// or rsync:// URL"),
            stamp=check.string(h_map, "stamp", path, "health", health.stamp) or health.stamp,
            max_lag=check.number(h_map, "max_lag", path, "health", 0, 86400 * 365, 0),
            fall=check.integer(h_map, "fall", path, "health", 1, 100, 1),
            rise=check.integer(h_map, "rise", path, "health", 1, 100, 1),
            concurrency=check.integer(h_map, "concurrency", path, "health", 1, 10000, health.concurrency),
        )

    rrl = RRLSettings()
    r_map = check.mapping(top.get("rrl"), path, top.line_of("rrl"), "rrl") if "rrl" in top else None
    if r_map is not None:
        check.known_keys(r_map, ("enabled", "responses_per_second", "slip", "ipv4_prefix", "ipv6_prefix"),
                         path, "rrl")
        rrl = RRLSettings(
            enabled=check.boolean(r_map, "enabled", path, "rrl", False),
            responses_per_second=check.integer(r_map, "responses_per_second", path, "rrl", 1, 1000000,
                                               rrl.responses_per_second),
            slip=check.integer(r_map, "slip", path, "rrl", 0, 10, rrl.slip),
            ipv4_prefix=check.integer(r_map, "ipv4_prefix", path, "rrl", 8, 32, rrl.ipv4_prefix),
            ipv6_prefix=check.integer(r_map, "ipv6_prefix", path, "rrl", 16, 128, rrl.ipv6_prefix),
        )
    tcp = TCPSettings()
    t_map = check.mapping(top.get("tcp"), path, top.line_of("tcp"), "tcp") if "tcp" in top else None
    if t_map is not None:
        check.known_keys(t_map, ("max_connections", "idle_timeout"), path, "tcp")
        tcp = TCPSettings(
            max_connections=check.integer(t_map, "max_connections", path, "tcp", 1, 100000, tcp.max_connections),
            idle_timeout=check.number(t_map, "idle_timeout", path, "tcp", 0.1, 3600, tcp.idle_timeout),
        )
    status_listen: str | None = "127.0.0.1:8053"
    if "status" in top:
        if top["status"] in (None, False, "off"):
            status_listen = None
        else:
            try:
                parse_hostport(str(top["status"]))
                status_listen = str(top["status"])
            except ValueError as exc:
                check.error(path, top.line_of("status"), f"status: {exc} (or off)")
    nsid = _hex_or_text(check, top, "nsid", path, 1, 128)
    cookie_secret = _hex_or_text(check, top, "cookie_secret", path, 16, 64)
    state_dir = check.string(top, "state_dir", path, "dnsbalance.yaml", "state") or "state"
    answers = check.integer(top, "answers", path, "dnsbalance.yaml", 1, 32, 4)
    return Settings(
        zone=zone,
        nameservers=tuple(nameservers),
        soa=soa,
        ttl=check.integer(top, "ttl", path, "dnsbalance.yaml", 0, 604800, 60),
        answers=answers,
        min_answers=check.integer(top, "min_answers", path, "dnsbalance.yaml", 1, answers, 1),  # <= answers
        listen=tuple(listen) or ("127.0.0.1:5353",),
        geoip=geoip,
        health=health,
        state_dir=directory / state_dir,
        nsid=nsid,
        cookies=check.boolean(top, "cookies", path, "dnsbalance.yaml", True),
        cookie_secret=cookie_secret,
        rrl=rrl,
        tcp=tcp,
        status_listen=status_listen,
    )


def _hex_or_text(check: _Checker, top: PosDict, key: str, path: Path, low: int, high: int) -> bytes | None:
    """`text` as UTF-8, or `hex:0a1b...` as raw bytes; `low`..`high` octets."""
    text = check.string(top, key, path, "dnsbalance.yaml", None)
    if text is None:
        return None
    try:
        value = bytes.fromhex(text[4:]) if text.startswith("hex:") else text.encode()
    except ValueError:
        value = b""
    if not low <= len(value) <= high:
        check.error(path, top.line_of(key), f"dnsbalance.yaml: {key} must be {low}..{high} octets "
                                            "(text, or hex:0a1b...)")
        return None
    return value


def _state(check: _Checker, node: PosDict, path: Path, what: str) -> AdminState:
    text = check.string(node, "state", path, what, "auto", lambda s: s in ("auto", "up", "down"),
                        "one of up, down, auto")
    return AdminState(text)


def _mirrors(check: _Checker, directory: Path) -> tuple[dict[str, Mirror], dict[str, Relay]]:
    path = directory / "mirrors.yaml"
    raw = check.read(path, required=True)
    mirrors: dict[str, Mirror] = {}
    relays: dict[str, Relay] = {}
    if raw is None:
        return mirrors, relays
    top = check.mapping(raw, path, 1, "mirrors.yaml")
    if top is None:
        return mirrors, relays
    check.known_keys(top, ("mirrors", "relays"), path, "mirrors.yaml")

    section = (check.mapping(top.get("mirrors"), path, top.line_of("mirrors"), "mirrors") if "mirrors" in top
               else None) or PosDict()
    for name, node in section.items():
        line = section.line_of(name)
        what = f"mirror '{name}'"
        if not isinstance(name, str) or not is_dns_name(name) or "." in name:
            check.error(path, line, f"mirror name '{name}' must be one DNS label (letters, digits, - and _)")
            continue
        node = check.mapping(node, path, line, what)
        if node is None:
            continue
        check.known_keys(node, ("addresses", "url", "state"), path, what)
        if not node.get("addresses"):
            check.error(path, line, f"{what} has no address")
        ipv4, ipv6 = check.addresses(node.get("addresses", PosList()), path, node.line_of("addresses"), what)
        url = check.string(node, "url", path, what, None, _url_ok, "an http(s):// or rsync:// URL")
        if url and not url.endswith("/"):
            url += "/"
        mirrors[name] = Mirror(name, ipv4, ipv6, url, _state(check, node, path, what))

    section = (check.mapping(top.get("relays"), path, top.line_of("relays"), "relays") if "relays" in top
               else None) or PosDict()
    for name, node in section.items():
        line = section.line_of(name)
        what = f"relay '{name}'"
        if not isinstance(name, str) or not is_dns_name(name) or "." in name:
            check.error(path, line, f"relay name '{name}' must be one DNS label (letters, digits, - and _)")
            continue
        if name in mirrors:
            check.error(path, line, f"'{name}' is both a mirror and a relay")
            continue
        node = check.mapping(node, path, line, what)
        if node is None:
            continue
        check.known_keys(node, ("addresses", "stun", "turn", "state"), path, what)
        if not node.get("addresses"):
            check.error(path, line, f"{what} has no address")
        ipv4, ipv6 = check.addresses(node.get("addresses", PosList()), path, node.line_of("addresses"), what)
        stun = check.integer(node, "stun", path, what, 1, 65535, 0) or None
        turn: dict[str, int] = {}
        if "turn" in node:
            turn_map = check.mapping(node["turn"], path, node.line_of("turn"), f"{what} turn")
            if turn_map is not None:
                check.known_keys(turn_map, TURN_TRANSPORTS, path, f"{what} turn")
                for transport in TURN_TRANSPORTS:
                    port = check.integer(turn_map, transport, path, f"{what} turn", 1, 65535, 0)
                    if port:
                        turn[transport] = port
        relays[name] = Relay(name, ipv4, ipv6, stun, MappingProxyType(turn), _state(check, node, path, what))
    return mirrors, relays


def _table(check: _Checker, path: Path, region: Region, mirrors: dict[str, Mirror], relays: dict[str, Relay],
           reserved: set[str], required: bool) -> Table:
    raw = check.read(path, required)
    names: dict[str, tuple[Entry, ...]] = {}
    top = (check.mapping(raw, path, 1, path.name) if raw is not None else None) or PosDict()
    for owner, node in top.items():
        line = top.line_of(owner)
        if not isinstance(owner, str) or not (owner == APEX or is_dns_name(owner)):
            check.error(path, line, f"'{owner}' is not a valid DNS name")
            continue
        key = normalise_name(owner)
        if key in names:
            check.error(path, line, f"'{owner}' appears twice (names are not case-sensitive)")
            continue
        if key in reserved:
            check.error(path, line, f"'{owner}' is a name server or relay target name of the zone and cannot be "
                                    "balanced")
            continue
        if node is None:
            check.error(path, line, f"{owner}: no entries")
            continue
        node = check.mapping(node, path, line, owner)
        if node is None:
            continue
        srv = key in SRV_NAMES
        entries: list[Entry] = []
        for target, priority in node.items():
            tline = node.line_of(target)
            if srv and target in mirrors:
                check.error(path, tline, f"{owner}: '{target}' is a mirror; {owner} takes relays")
                continue
            if not srv and target in relays:
                check.error(path, tline, f"{owner}: '{target}' is a relay; relays serve only {', '.join(SRV_NAMES)}")
                continue
            if target not in mirrors and target not in relays:
                check.error(path, tline, f"{owner}: unknown {'relay' if srv else 'mirror'} '{target}'")
                continue
            tier = 0
            if srv and isinstance(priority, PosDict):
                what = f"{owner}: '{target}'"
                check.known_keys(priority, ("priority", "tier"), path, what)
                tier = check.integer(priority, "tier", path, what, 0, 65535, 0)
                if "priority" not in priority:
                    check.error(path, tline, f"{what}: priority is required")
                    continue
                priority = priority["priority"]
            if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= DRAINED:
                check.error(path, tline,
                            f"{owner}: priority of '{target}' must be an integer 0..{DRAINED}, got {priority!r}")
                continue
            if srv:
                service = SRV_SERVICES[key]
                if not relays[target].port(service):
                    needed = "stun" if service == "stun" else f"turn {service.removeprefix('turn-')}"
                    check.error(path, tline, f"{owner}: relay '{target}' defines no {needed} port")
                    continue
            entries.append(Entry(str(target), priority, tier))
        if not node:
            check.error(path, line, f"{owner}: no entries")
        elif entries:
            names[key] = tuple(entries)
    return Table(region, path, MappingProxyType(names))


def _region_files(check: _Checker, folder: Path, level: Level) -> dict[str, Path]:
    """Code -> file, for continent/*.yaml or country/*.yaml; reports unknown and doubled codes."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml") or path.name.startswith("."):
            continue
        stem = path.stem.upper()
        if level is Level.CONTINENT:
            code = stem if stem in CONTINENTS else None
            if code is None:
                check.error(path, 1, f"unknown continent code '{path.stem}' (expected one of {' '.join(CONTINENTS)})")
                continue
        else:
            known = country(stem)
            code = known.alpha2 if known and len(stem) in (2, 3) else None
            if code is None:
                check.error(path, 1, f"unknown country code '{path.stem}' (expected ISO 3166 alpha-2 or alpha-3)")
                continue
        if code in found:
            check.error(path, 1, f"{level.value} {code} is defined twice: {found[code].name} and {path.name}")
            continue
        found[code] = path
    return found


def _drained_names(check: _Checker, config: Config) -> None:
    """A name whose entries are all drained serves nobody: an error unless a wider table serves it."""
    def serves(table: Table | None, name: str) -> bool:
        return table is not None and any(e.priority < DRAINED for e in table.names.get(name, ()))

    for table in config.tables():
        for name, entries in table.names.items():
            if not entries or any(e.priority < DRAINED for e in entries):
                continue
            wider: list[Table | None] = []
            if table.region.level is Level.COUNTRY:
                wider.append(config.continents.get(continent_of(table.region.code) or ""))
            if table.region.level is not Level.DEFAULT:
                wider.append(config.default)
            line = _line_of(table.source, name)
            fallback = next((t for t in wider if serves(t, name)), None)
            if fallback is not None:
                check.warning(table.source, line,
                              f"{name}: every entry is drained (priority {DRAINED}); the {fallback.region} table "
                              "serves these clients")
            else:
                check.error(table.source, line,
                            f"{name}: every entry is drained (priority {DRAINED}) and no wider table serves it")


def _uncovered_names(check: _Checker, config: Config) -> None:
    """A name that only some regions list leaves every other client with an empty answer: say so."""
    for table in (*config.countries.values(), *config.continents.values()):
        for name in table.names:
            if name not in config.default.names:
                check.warning(table.source, _line_of(table.source, name),
                              f"{name}: not in default.yaml, so clients of other regions get no answer for it")


def _line_of(path: Path, name: str) -> int:
    try:
        top = load_yaml(path)
    except (YamlSyntaxError, OSError):
        return 1
    if isinstance(top, PosDict):
        for key in top:
            if isinstance(key, str) and normalise_name(key) == name:
                return top.line_of(key)
    return 1


def check_config(directory: Path) -> tuple[Config | None, list[Problem]]:
    """Every problem in the folder; the Config too when there is no error."""
    check = _Checker()
    if not directory.is_dir():
        check.error(directory, 1, "configuration folder does not exist")
        return None, check.problems
    settings = _settings(check, directory)
    mirrors, relays = _mirrors(check, directory)
    reserved = {RELAY_LABEL, *(f"{name}.{RELAY_LABEL}" for name in relays)}  # SRV target names
    if settings:
        for ns in settings.nameservers:
            if ns.name == settings.zone:
                reserved.add(APEX)
            elif ns.name.endswith("." + settings.zone):
                reserved.add(ns.name[: -len(settings.zone) - 1])

    def load(path: Path, region: Region, required: bool = False) -> Table:
        return _table(check, path, region, mirrors, relays, reserved, required)

    default = load(directory / "default.yaml", DEFAULT_REGION, required=True)
    continents = {code: load(path, Region(Level.CONTINENT, code))
                  for code, path in _region_files(check, directory / "continent", Level.CONTINENT).items()}
    countries = {code: load(path, Region(Level.COUNTRY, code))
                 for code, path in _region_files(check, directory / "country", Level.COUNTRY).items()}
    if settings is None:
        return None, check.problems
    config = Config(directory, settings, MappingProxyType(mirrors), MappingProxyType(relays), default,
                    MappingProxyType(continents), MappingProxyType(countries))
    _drained_names(check, config)
    if not any(p.severity is Severity.ERROR for p in check.problems):
        _uncovered_names(check, config)  # with errors about, a missing name is likely one of their echoes
    if any(p.severity is Severity.ERROR for p in check.problems):
        return None, check.problems
    return config, check.problems


def load_config(directory: Path) -> Config:
    """The Config, or ConfigError listing every problem."""
    config, problems = check_config(directory)
    if config is None:
        raise ConfigError(problems)
    return config
