"""Where a client is: its EDNS Client Subnet (RFC 7871) or its resolver's address, through one GeoIP
reader, the network tables and (when AS tables exist) one ASN reader, with the answers cached. One
Locator belongs to one serving snapshot, so a query never mixes the readers of one configuration with the
tables of another."""
from __future__ import annotations

from dnsbalance.configuration.model import Config
from dnsbalance.geo.asn import AsnDatabase
from dnsbalance.geo.locate import UNKNOWN, GeoIP, IPAddress, Location, unmap
from dnsbalance.geo.prefixes import NetworkMap
from dnsbalance.protocol.addresses import client_address
from dnsbalance.protocol.edns import Edns, Subnet
from dnsbalance.sealed import Sealed

CACHE_LIMIT = 1 << 16  # client addresses and subnets remembered per snapshot
MAPPED_BITS = 96  # ::ffff:0:0/96, in front of an IPv4-mapped address


def network_map(config: Config) -> NetworkMap:
    return NetworkMap({name: table.networks for name, table in config.networks.items()})


class Locator(Sealed):
    __slots__ = ("asn", "ecs", "geoip", "networks", "source_cache", "subnet_cache")

    def __init__(self, geoip: GeoIP, ecs: bool, networks: NetworkMap | None = None,
                 asn: AsnDatabase | None = None) -> None:
        """`asn`: given only when some AS table can use it, so clients elsewhere cost no ASN lookup and
        no narrower scope."""
        self.geoip = geoip
        self.ecs = ecs
        self.networks = networks or NetworkMap({})
        self.asn = asn
        # where clients and subnets were found, for this snapshot's life (its GeoIP reader and tables)
        self.source_cache: dict[str, Location] = {}
        self.subnet_cache: dict[Subnet, Location] = {}

    def used_subnet(self, edns: Edns | None) -> Subnet | None:
        """The query's client subnet, if it sent one and ECS is on."""
        return edns.client_subnet if edns is not None and self.ecs else None

    def locate(self, client: str, subnet: Subnet | None) -> tuple[Location, int | None]:
        """Where the client is, and the ECS scope to echo when its subnet decided (RFC 7871: a /0 subnet
        means use the resolver's address, scope 0)."""
        if subnet is None:
            location = self.source_cache.get(client)
            if location is None:
                location = _remember(self.source_cache, client, self._locate_source(client))
            return location, None
        if subnet.source == 0:  # RFC 7871 7.1.2: the client asked that no subnet be used
            return self.locate(client, None)[0], 0
        location = self.subnet_cache.get(subnet)
        if location is None:
            location = _remember(self.subnet_cache, subnet, self.place(subnet.address))
        return location, location.prefix_len

    def place(self, address: IPAddress) -> Location:
        """GeoIP, network tables and AS of one address. `prefix_len` is the scope within which all of them
        hold: the longest of the GeoIP network, the ASN network and the network-table range, counted in the
        address's own family (an IPv4-mapped IPv6 address gets 96 more bits than its IPv4 form)."""
        plain = unmap(address)
        geo = self.geoip.locate(plain)
        match = self.networks.match(plain)
        asn = self.asn.lookup(plain) if self.asn is not None else None
        scope = max(geo.prefix_len, match.scope, asn.prefix_len if asn is not None else 0)
        if plain is not address:
            scope += MAPPED_BITS
        if not match.tables and asn is None and scope == geo.prefix_len:
            return geo  # the common case: the GeoIP reader's own (interned) value
        return Location(geo.country, geo.continent, scope, match.tables, asn.asn if asn is not None else None)

    def _locate_source(self, client: str) -> Location:
        try:
            return self.place(client_address(client))
        except ValueError:
            return UNKNOWN


def _remember(cache: dict, key: object, location: Location) -> Location:  # type: ignore[type-arg]
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = location
    return location
