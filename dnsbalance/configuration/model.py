"""The configuration as frozen values: what the YAML files say, checked and normalised."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum, IntEnum, StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dnsbalance.geo.locate import Network

DRAINED = 10000  # DNS Balance's priority scale: weight = 10000 - priority, so 10000 is never returned
SRV_NAMES = ("_stun._udp", "_turn._udp", "_turn._tcp", "_turns._tcp")
APEX = "@"
RELAY_LABEL = "relay"  # SRV targets are <relay>.relay.<zone>, answered by the server itself
MIRROR_LABEL = "mirror"  # apt's SRV targets are <mirror>.mirror.<name>.<zone> (configuration/web_services.py)

# What each SRV name needs from a relay: the service probed, its key in mirrors.yaml (stun, or turn: transport).
class RelayService(StrEnum):
    """A relay's probed services, as health keys and the status page name them ("tokyo1/turn-tls")."""

    STUN = "stun"
    TURN_UDP = "turn-udp"
    TURN_TCP = "turn-tcp"
    TURN_TLS = "turn-tls"


SRV_SERVICES: dict[str, RelayService] = {
    "_stun._udp": RelayService.STUN,
    "_turn._udp": RelayService.TURN_UDP,
    "_turn._tcp": RelayService.TURN_TCP,
    "_turns._tcp": RelayService.TURN_TLS,
}


def weight_of(priority: int) -> int:
    return DRAINED - priority


@dataclass(frozen=True)
class NameServer:
    name: str  # absolute, lower case, no trailing dot
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class SOASettings:
    rname: str
    refresh: int = 3600
    retry: int = 600
    expire: int = 604800
    minimum: int = 60
    ttl: int = 3600  # TTL of the SOA and NS records themselves


class Algorithm(IntEnum):
    """DNSSEC signing algorithms offered (RFC 8624's recommended ones for signing)."""

    ECDSAP256SHA256 = 13
    ED25519 = 15


@dataclass(frozen=True)
class DNSSECSettings:
    """`dnssec:`: off unless `sign: true`; signatures last `validity` seconds and are made again once less
    than `refresh` is left (so a resolver never sees one about to expire). `keys`: None is state_dir/keys."""

    sign: bool = False
    algorithm: Algorithm = Algorithm.ECDSAP256SHA256
    validity: int = 14 * 86400
    refresh: int = 7 * 86400
    keys: Path | None = None


@dataclass(frozen=True)
class GeoIPSettings:
    database: str = "builtin"
    ecs: bool = True
    asn_database: str | None = None  # an ASN .mmdb (GeoLite2-ASN layout): what AS tables need


@dataclass(frozen=True)
class HealthSettings:
    enabled: bool = True
    interval: float = 120.0
    timeout: float = 5.0
    # The single-archive keys: without `archives:` they define the one archive every name is served from;
    # with it, max_lag, quorum and grace are the defaults each archive may override.
    master: str | None = None
    stamp: str = "project/trace/ftp-master.debian.org"
    max_lag: float = 0.0
    quorum: float = 0.5  # share of answering mirrors that must carry a serial before it is the reference
    grace: float = 3600.0  # seconds mirrors one push behind the reference keep serving
    fall: int = 1
    rise: int = 1
    concurrency: int = 200  # probes in flight at once
    # What apt gets (health/served.py): probe each A and AAAA address a mirror is served at, not only its URL's
    # host; send the balanced name (deb.cdn.example.org, or the mirror's `host:`) as HTTP Host and TLS SNI.
    # On by default (issue 23): what apt gets is judged. An address the prober has no route to (a prober with no
    # IPv6) is not taken out for it: it is unchecked and served on the mirror's other probes. Off: a prober that
    # cannot reach a mirror's private addresses.
    addresses: bool = True
    vhost: bool = True
    ca: str | None = None  # a PEM bundle trusted beside the system's for https probes (a private CA)
    certificate_days: float = 14.0  # warn when a served certificate expires within this many days
    # Read what ftpsync publishes about each mirror (project/trace/_hierarchy, its own trace): its name, for
    # the lock file, and the architectures it carries. On by default; on by itself when a name requires
    # architectures.
    traces: bool = True
    source: str | None = None  # the local address probes leave from (None: the kernel's choice)


IMPLICIT_ARCHIVE = "default"  # the archive of the single-archive keys (health.master, health.stamp, mirror url)


@dataclass(frozen=True)
class Archive:
    """One archive the CDN serves (debian, debian-security): its master, its stamp, its freshness rules, and
    the table names served from it. Its fields have no defaults of their own: they come from `health:`."""

    name: str
    master: str | None
    stamp: str
    max_lag: float
    quorum: float
    grace: float
    names: tuple[str, ...] = ()  # table names served from it; () in the archive serving every unlisted name
    implicit: bool = False  # made from the single-archive keys: its health keys are the bare mirror names
    line: int = field(default=1, compare=False, repr=False)  # where dnsbalance.yaml defines it


@dataclass(frozen=True)
class RRLSettings:
    """Response rate limiting per client prefix (as BIND and Knot do), UDP only."""

    enabled: bool = False
    responses_per_second: int = 20
    slip: int = 2  # every slip-th limited response goes out truncated (TC) instead of dropped; 0: drop all
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56


@dataclass(frozen=True)
class TCPSettings:
    max_connections: int = 512  # past this, the connection idle longest is closed
    idle_timeout: float = 10.0  # seconds without a complete query


@dataclass(frozen=True)
class ReloadSettings:
    # Off: edited files wait for `dnsbalance reload` (or SIGHUP), so `dnsbalance plan` can show what they
    # will do first; on: the health cycle after a change applies it.
    auto_apply: bool = False


@dataclass(frozen=True)
class ClusterSettings:
    """Several name servers sharing one view through etcd (dnsbalance/cluster/)."""

    etcd: tuple[str, ...]  # endpoint URLs, http:// or https://
    instance: str  # this name server's name among the others (default: the host name)
    prefix: str  # every key lives under it: /dnsbalance/ZONE/ by default
    down_quorum: int | str = "majority"  # live vantage points that must see a target down: N, majority or all
    ca: Path | None = None  # TLS: the CA that signed etcd's certificates
    cert: Path | None = None  # TLS client certificate and key
    key: Path | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log or page
    instances: tuple[str, ...] = ()  # the names whose votes count; (): any well-formed name
    watch: bool = True  # follow the others' votes as they arrive (an etcd watch), not only at each cycle


@dataclass(frozen=True)
class Settings:
    zone: str  # lower case, no trailing dot
    nameservers: tuple[NameServer, ...]
    soa: SOASettings
    ttl: int = 60
    answers: int = 4
    min_answers: int = 1  # addresses in every answer, even where that bends the shares (failover first)
    listen: tuple[str, ...] = ("127.0.0.1:20053",)
    geoip: GeoIPSettings = GeoIPSettings()
    health: HealthSettings = HealthSettings()
    state_dir: Path = Path("state")
    nsid: bytes | None = None  # RFC 5001 server identifier; None: not sent
    cookies: bool = True  # RFC 7873 server cookies
    cookie_secret: bytes | None = None  # shared by anycast instances; None: random per process
    rrl: RRLSettings = RRLSettings()
    tcp: TCPSettings = TCPSettings()
    archives: tuple[Archive, ...] = ()  # (): one implicit archive made from `health:`
    status_listen: str | None = "127.0.0.1:8053"  # status page, JSON and metrics; None: off
    reload: ReloadSettings = ReloadSettings()
    # `health: require:`: table name -> the architectures a mirror must carry (its ftpsync trace says) to serve it
    require: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    require_lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                             repr=False)
    cluster: ClusterSettings | None = None  # None: one instance, its own verdicts
    dnssec: DNSSECSettings = DNSSECSettings()

    @property
    def key_dir(self) -> Path:
        """Where the zone's DNSSEC keys live."""
        return self.dnssec.keys if self.dnssec.keys is not None else self.state_dir / "keys"


class AdminState(Enum):
    """An operator's override in mirrors.yaml: `auto` follows the health checks."""

    AUTO = "auto"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class Mirror:
    name: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    url: str | None = None  # the base URL of the archive serving unlisted names; None: not probed for it
    state: AdminState = AdminState.AUTO
    urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # archive -> base URL
    lock: str | None = None  # ftpsync's lock file at the archive root; None: from the URL host; "": none
    host: str | None = None  # the HTTP Host / TLS SNI its probes send; None: the balanced name of each table name

    def url_for(self, archive: Archive, fallback: Archive) -> str | None:
        """The base URL this mirror carries `archive` at; None when it does not (or is not probed)."""
        found = self.urls.get(archive.name)
        return found if found is not None or archive != fallback else self.url

    def probed(self) -> bool:
        return bool(self.url or self.urls)


@dataclass(frozen=True)
class Relay:
    name: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    stun: int | None = None
    turn: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    state: AdminState = AdminState.AUTO

    def port(self, service: str) -> int | None:
        """The port of 'stun', 'turn-udp', 'turn-tcp' or 'turn-tls', if the relay defines it."""
        if service == "stun":
            return self.stun
        return self.turn.get(service.removeprefix("turn-"))

    def services(self) -> tuple[str, ...]:
        return tuple(s for s in SRV_SERVICES.values() if self.port(s))


def health_key(relay: str, service: str) -> str:
    """Relays are judged per service: a dead TLS port must not take the relay's UDP service down.
    Mirrors are judged per archive the same way (`jaist/debian-security`)."""
    return f"{relay}/{service}"


def archives_of(settings: Settings) -> tuple[Archive, ...]:
    """The configured archives, or the one implicit archive of the single-archive `health:` keys."""
    if settings.archives:
        return settings.archives
    h = settings.health
    return (Archive(IMPLICIT_ARCHIVE, h.master, h.stamp, h.max_lag, h.quorum, h.grace, implicit=True),)


def fallback_archive(archives: tuple[Archive, ...]) -> Archive:
    """The archive serving every name no archive lists (and the one a mirror's plain `url:` belongs to)."""
    return next((a for a in archives if not a.names), archives[0])


def archive_for(settings: Settings, name: str) -> Archive:
    archives = archives_of(settings)
    return next((a for a in archives if name in a.names), None) or fallback_archive(archives)


def mirror_key(mirror: str, archive: Archive) -> str:
    """The health key of a mirror for one archive; the implicit archive keeps the bare mirror name, so
    health.json and logs read as they did before archives."""
    return mirror if archive.implicit else health_key(mirror, archive.name)


@dataclass(frozen=True)
class Entry:
    target: str  # a mirror or relay name
    priority: int
    tier: int = 0  # SRV priority field: relays of tier 1 are used only when no tier-0 relay answers

    @property
    def weight(self) -> int:
        return weight_of(self.priority)


class Level(Enum):
    NETWORK = "network"  # config/network/NAME.yaml: the clients inside its `networks:` prefixes
    ASN = "asn"  # config/asn/AS2500.yaml: the clients of one AS
    COUNTRY = "country"
    CONTINENT = "continent"
    DEFAULT = "default"


@dataclass(frozen=True)
class Region:
    level: Level
    code: str  # "JP", "EU", "default", a network table's NAME or "AS2500"

    def __str__(self) -> str:
        return "default" if self.level is Level.DEFAULT else f"{self.level.value} {self.code}"


DEFAULT_REGION = Region(Level.DEFAULT, "default")




@dataclass(frozen=True)
class Table:
    region: Region
    source: Path
    names: Mapping[str, tuple[Entry, ...]]  # relative owner name (lower case, "@" = apex) -> entries
    # Where `source` spells each name: checks across tables point there without reading the file again.
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)
    # A network table's `networks:` prefixes, and the line of each in `source`.
    networks: tuple[Network, ...] = ()
    network_lines: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def line_of(self, name: str) -> int:
        return self.lines.get(name, 1)


@dataclass(frozen=True)
class Config:
    directory: Path
    settings: Settings
    mirrors: Mapping[str, Mirror]
    relays: Mapping[str, Relay]
    default: Table
    continents: Mapping[str, Table]
    countries: Mapping[str, Table]
    networks: Mapping[str, Table] = field(default_factory=lambda: MappingProxyType({}))  # by file stem
    asns: Mapping[int, Table] = field(default_factory=lambda: MappingProxyType({}))  # by AS number

    def tables(self) -> tuple[Table, ...]:
        return (*self.networks.values(), *self.asns.values(), *self.countries.values(), *self.continents.values(),
                self.default)

    def mirror_listings(self) -> Iterator[tuple[Table, str, Archive, Mirror]]:
        """Every mirror a table lists under a balanced name (not the relays' SRV names), with the archive
        that name is served from, in table order: what clients can be handed."""
        for table in self.tables():
            for name, entries in table.names.items():
                if name in SRV_NAMES:
                    continue
                archive = archive_for(self.settings, name)
                for entry in entries:
                    if (mirror := self.mirrors.get(entry.target)) is not None:
                        yield table, name, archive, mirror


def field_defaults(cls: type) -> Mapping[str, Any]:
    """Field name -> the default its dataclass declares: the loader falls back to these, so each default is
    written once, here, and a file that leaves a key out means the same as code that leaves the argument out."""
    found: dict[str, Any] = {}
    for item in fields(cls):
        if item.default is not MISSING:
            found[item.name] = item.default
        elif item.default_factory is not MISSING:
            found[item.name] = item.default_factory()
    return MappingProxyType(found)
